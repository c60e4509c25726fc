// Package cli is the berth command line: a client of the engine's API,
// plus `berth daemon`, which runs the engine itself.
//
// Command names follow Apple's `container` tool (`berth run`,
// `berth image pull`, `berth ls`, `berth delete`), with Docker-style
// aliases (`ps`, `images`, `pull`, `rmi`) where Docker users reach for
// them, and Docker's flags wherever a command mirrors one of Docker's.
// An unknown command or subcommand is an error with a suggestion, never
// a help text and exit 0.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/home"
	"github.com/spf13/cobra"
)

// ExitError carries a process exit code out of a command (for example a
// container's exit status) without printing anything more.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// exitWithMessage prints err and exits with code.
type exitWithMessage struct {
	code int
	err  error
}

func (e *exitWithMessage) Error() string { return e.err.Error() }
func (e *exitWithMessage) Unwrap() error { return e.err }

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

// client returns a client of the daemon on the home's socket.
func (e *env) client() (*client.Client, error) {
	h, err := e.home()
	if err != nil {
		return nil, err
	}
	return client.New(h.Socket())
}

// withClient is a command's RunE whose body needs a client of the daemon:
// it opens one before fn runs and closes it after.
func (e *env) withClient(fn func(cmd *cobra.Command, args []string, cl *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cl, err := e.client()
		if err != nil {
			return err
		}
		defer cl.Close()
		return fn(cmd, args, cl)
	}
}

// NewRoot builds the berth command tree.
func NewRoot(stdio IO) *cobra.Command {
	root, _ := newRoot(stdio)
	return root
}

// newRoot is NewRoot and the env its commands share.
func newRoot(stdio IO) (*cobra.Command, *env) {
	e := &env{io: stdio}
	root := newGroupCmd("berth", "Run Linux containers, each in its own lightweight VM")
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	root.SetFlagErrorFunc(flagError)
	root.SetHelpCommand(newHelpCmd())
	root.PersistentFlags().StringVar(&e.homeFlag, "home", "", "Berth home directory (default $BERTH_HOME or ~/.berth)")
	root.AddCommand(
		newVersionCmd(e),
		newSystemCmd(e),
		newDaemonCmd(e),
		newImageCmd(e),
		newVolumeCmd(e),
		newNetworkCmd(e),
		newBuilderCmd(e), newBuildCmd(e),
		newShareCmd(e),
		newRunCmd(e), newCreateCmd(e), newStartCmd(e), newStopCmd(e), newRestartCmd(e),
		newKillCmd(e), newRmCmd(e), newLsCmd(e), newInspectCmd(e), newLogsCmd(e),
		newExecCmd(e), newShellCmd(e), newUICmd(e), newWaitCmd(e), newAttachCmd(e), newStatsCmd(e), newPruneCmd(e), newCpCmd(e), newComposeCmd(e), newPortCmd(e),
		newPluginCmd(e),
	)
	// The Docker-style top-level aliases of image commands.
	root.AddCommand(newPullCmd(e, "pull"), newPushCmd(e), newImagesCmd(e, "images"), newRmiCmd(e, "rmi"),
		newLoadCmd(e, "load"), newSaveCmd(e, "save"))
	return root, e
}

// newGroupCmd is a command that only holds subcommands: alone it prints
// its help; with an argument that names none of them it fails with
// cobra's `unknown command "X" for "berth image"` and suggestions.
func newGroupCmd(use, short string, aliases ...string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Aliases: aliases,
		Short:   short,
		Args:    noSubcommand,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
}

// noSubcommand rejects the arguments a group command is left with when
// they named none of its subcommands.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return &unknownCommandError{name: args[0], parent: cmd.CommandPath(), suggestions: suggestions(cmd, args[0])}
}

// newHelpCmd is `berth help [COMMAND...]`: the command's help, or the
// unknown-command error for a topic that names none.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return noSubcommand(cmd, rest)
			}
			return cmd.Help()
		},
	}
}

// flagError reports a flag cobra could not parse, unless the command is
// a group given an unknown subcommand: `berth image frob -x` is about
// "frob", not "-x".
func flagError(cmd *cobra.Command, err error) error {
	if cmd.HasSubCommands() && len(cmd.Flags().Args()) > 0 {
		return noSubcommand(cmd, cmd.Flags().Args())
	}
	return err
}

// unknownCommandError is a mistyped or unknown (sub)command.
type unknownCommandError struct {
	name, parent string
	suggestions  []string
}

func (e *unknownCommandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unknown command %q for %q", e.name, e.parent)
	if len(e.suggestions) > 0 {
		b.WriteString("\n\nDid you mean this?\n")
		for _, s := range e.suggestions {
			fmt.Fprintf(&b, "\t%s\n", s)
		}
	}
	fmt.Fprintf(&b, "\nRun '%s --help' for usage.", e.parent)
	return b.String()
}

// suggestions are the subcommands of cmd that typed may have meant:
// close in spelling to the name or one of its aliases, or starting with
// typed (cobra's rules, applied to aliases too).
func suggestions(cmd *cobra.Command, typed string) []string {
	var out []string
	for _, sub := range cmd.Commands() {
		if !sub.IsAvailableCommand() {
			continue
		}
		for _, name := range append([]string{sub.Name()}, sub.Aliases...) {
			if levenshtein(strings.ToLower(typed), strings.ToLower(name)) <= 2 ||
				strings.HasPrefix(strings.ToLower(name), strings.ToLower(typed)) {
				out = append(out, sub.Name())
				break
			}
		}
	}
	return out
}

// levenshtein is the edit distance between a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Main runs the CLI with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdio IO) int {
	root, e := newRoot(stdio)
	addPlugins(ctx, root, e, args)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	code := 1
	var em *exitWithMessage
	if errors.As(err, &em) {
		code = em.code
	}
	fmt.Fprintf(stdio.Err, "berth: %s\n", message(err))
	return code
}

// dockerPrefix is what Docker's client puts before every message of the
// daemon's; berth prints the daemon's message alone after "berth: ".
const dockerPrefix = "Error response from daemon: "

// message is the text the CLI prints for err: the daemon's own message,
// and for an absent daemon what to do about it rather than how Docker's
// client failed to connect.
func message(err error) string {
	if nr := client.NotRunning(err); nr != nil {
		return nr.Error()
	}
	return strings.ReplaceAll(err.Error(), dockerPrefix, "")
}

// StdIO is the process's own streams.
func StdIO() IO { return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr} }
