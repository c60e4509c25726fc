// Package cli is the berth command line: a client of the engine's API,
// plus `berth daemon`, which runs the engine itself.
//
// Command names follow Apple's `container` tool (`berth run`,
// `berth image pull`, `berth ls`), with Docker-style aliases (`ps`,
// `images`, `pull`, `rmi`) where Docker users reach for them.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/home"
	"github.com/spf13/cobra"
)

// ExitError carries a process exit code out of a command (for example a
// container's exit status) without printing anything more.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// IO is the standard streams a command uses.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}

// env is what every command shares: the streams and the resolved home.
type env struct {
	io       IO
	homeFlag string
}

func (e *env) home() (home.Home, error) { return home.Resolve(e.homeFlag) }

func (e *env) client() (*client.Client, error) {
	h, err := e.home()
	if err != nil {
		return nil, err
	}
	return client.New(h.Socket()), nil
}

// NewRoot builds the berth command tree.
func NewRoot(stdio IO) *cobra.Command {
	e := &env{io: stdio}
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Run Linux containers, each in its own lightweight VM",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	root.PersistentFlags().StringVar(&e.homeFlag, "home", "", "Berth home directory (default $BERTH_HOME or ~/.berth)")
	imageCmd, imageAliases := newImageCmd(e)
	root.AddCommand(
		newVersionCmd(e),
		newSystemCmd(e),
		newDaemonCmd(e),
		imageCmd,
		newRunCmd(e), newCreateCmd(e), newStartCmd(e), newStopCmd(e), newRestartCmd(e),
		newKillCmd(e), newRmCmd(e), newLsCmd(e), newInspectCmd(e), newLogsCmd(e),
		newExecCmd(e), newWaitCmd(e), newAttachCmd(e), newStatsCmd(e), newPruneCmd(e),
	)
	root.AddCommand(imageAliases...)
	return root
}

// Main runs the CLI with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdio IO) int {
	root := NewRoot(stdio)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var em *exitWithMessage
	if errors.As(err, &em) {
		fmt.Fprintf(stdio.Err, "berth: %v\n", em.err)
		return em.code
	}
	fmt.Fprintf(stdio.Err, "berth: %v\n", err)
	return 1
}

// StdIO is the process's own streams.
func StdIO() IO { return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr} }
