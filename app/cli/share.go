package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/spf13/cobra"
)

// newShareCmd is `berth share`: host folders shared into one container
// while it runs (docs/sharing.md, "Run-time shares").
func newShareCmd(e *env) *cobra.Command {
	s := newGroupCmd("share", "Share a host folder with one container, at run time")
	s.AddCommand(newShareAddCmd(e), newShareLsCmd(e), newShareRmCmd(e))
	return s
}

func newShareAddCmd(e *env) *cobra.Command {
	var target string
	var ro bool
	c := &cobra.Command{
		Use:   "add [flags] CONTAINER HOSTDIR",
		Short: "Share HOSTDIR with CONTAINER (now if it runs, else at its next start; at every start after)",
		Args:  cobra.ExactArgs(2),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			dir, err := filepath.Abs(args[1])
			if err != nil {
				return fmt.Errorf("share %s: %w", args[1], err)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				return fmt.Errorf("share %s: %w", args[1], err)
			}
			if !fi.IsDir() {
				return fmt.Errorf("share %s: it is a file, not a folder; share the folder that holds it (%s)", args[1], filepath.Dir(dir))
			}
			sh, err := cl.AddShare(cmd.Context(), args[0], types.Share{Source: dir, Target: target, ReadOnly: ro})
			if err != nil {
				return err
			}
			fmt.Fprintln(e.io.Out, sh.Target)
			return nil
		}),
	}
	c.Flags().StringVar(&target, "target", "", "path inside the container (default /mnt/<folder name>)")
	c.Flags().BoolVar(&ro, "ro", false, "share read-only")
	return c
}

func newShareLsCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "ls CONTAINER",
		Aliases: []string{"list"},
		Short:   "List a container's run-time shares",
		Args:    cobra.ExactArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			list, err := cl.Shares(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(e.io.Out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "TARGET\tSOURCE\tMODE")
			for _, s := range list {
				mode := "rw"
				if s.ReadOnly {
					mode = "ro"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", s.Target, s.Source, mode)
			}
			return w.Flush()
		}),
	}
}

func newShareRmCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "rm CONTAINER TARGET",
		Short: "Stop sharing the folder at TARGET (unmounted now, not brought back)",
		Args:  cobra.ExactArgs(2),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			return cl.RemoveShare(cmd.Context(), args[0], args[1])
		}),
	}
}
