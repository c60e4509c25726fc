package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/spf13/cobra"
)

// newBuilderCmd is `berth builder`: the image builder (BuildKit in a
// micro-VM of its own, reached at $BERTH_HOME/run/buildkitd.sock).
func newBuilderCmd(e *env) *cobra.Command {
	b := newGroupCmd("builder", "Manage the image builder (BuildKit in its own VM; its socket is $BERTH_HOME/run/buildkitd.sock)")
	b.AddCommand(newBuilderStatusCmd(e), newBuilderStartCmd(e), newBuilderStopCmd(e), newBuilderPruneCmd(e))
	return b
}

func newBuilderStatusCmd(e *env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show whether the builder runs, its socket and its cache",
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, _ []string, cl *client.Client) error {
			st, err := cl.BuilderStatus(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.io.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			w := tabwriter.NewWriter(e.io.Out, 0, 4, 2, ' ', 0)
			state := "stopped (starts on the first connection to its socket)"
			if st.Running {
				state = fmt.Sprintf("running since %s on %s, %d client(s) connected", st.Since.Format(time.DateTime), st.Backend, st.Connections)
			}
			idle := "never"
			if st.IdleTimeout > 0 {
				idle = "after " + st.IdleTimeout.String() + " without clients"
			}
			fmt.Fprintf(w, "State:\t%s\n", state)
			fmt.Fprintf(w, "Socket:\tunix://%s\n", st.Socket)
			fmt.Fprintf(w, "Stops:\t%s\n", idle)
			fmt.Fprintf(w, "Cache:\t%s (%d MiB used of %d GiB)\n", st.CacheDisk, st.CacheBytes>>20, st.CacheSize>>30)
			fmt.Fprintf(w, "Log:\t%s\n", st.Log)
			if st.LastError != "" {
				fmt.Fprintf(w, "Last start failed:\t%s\n", st.LastError)
			}
			return w.Flush()
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return c
}

func newBuilderStartCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Start the builder's VM now and wait until BuildKit serves (a build starts it too)",
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, _ []string, cl *client.Client) error {
			return cl.StartBuilder(cmd.Context())
		}),
	}
}

func newBuilderStopCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop the builder's VM (its build cache stays; the next build starts it again)",
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, _ []string, cl *client.Client) error {
			return cl.StopBuilder(cmd.Context())
		}),
	}
}

func newBuilderPruneCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove the whole build cache",
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, _ []string, cl *client.Client) error {
			p, err := cl.PruneBuilder(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprint(e.io.Out, p.Report)
			return nil
		}),
	}
}
