package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthvm/berth/app/internal/human"
	"github.com/berthvm/berth/engine/api/client"
	"github.com/moby/moby/api/pkg/stdcopy"
	mobycontainer "github.com/moby/moby/api/types/container"
	docker "github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// lsFlags are the flags of ls (docker ps).
type lsFlags struct {
	all, quiet, noTrunc, latest bool
	last                        int
	filters                     []string
	format                      string
}

func newLsCmd(e *env) *cobra.Command {
	f := &lsFlags{}
	c := &cobra.Command{
		Use:     "ls [flags]",
		Aliases: []string{"ps", "list"},
		Short:   "List containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := f.options()
			if err != nil {
				return err
			}
			cl, err := e.client()
			if err != nil {
				return err
			}
			defer cl.Close()
			res, err := cl.ContainerList(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if f.quiet {
				for _, s := range res.Items {
					fmt.Fprintln(e.io.Out, trunc(s.ID, !f.noTrunc))
				}
				return nil
			}
			return printContainers(e.io.Out, res.Items, f.format, f.noTrunc)
		},
	}
	fl := c.Flags()
	fl.BoolVarP(&f.all, "all", "a", false, "show all containers, not only running ones")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "only show IDs")
	fl.BoolVar(&f.noTrunc, "no-trunc", false, "do not truncate output")
	fl.StringArrayVarP(&f.filters, "filter", "f", nil, "filter (label=KEY[=VALUE], status=STATE, name=NAME, id=ID, ancestor=IMAGE)")
	fl.IntVarP(&f.last, "last", "n", -1, "show the n last created containers (all states)")
	fl.BoolVarP(&f.latest, "latest", "l", false, "show the latest created container (all states)")
	fl.StringVar(&f.format, "format", "", "docker's format: table, table TEMPLATE, json or a Go TEMPLATE of .ID .Image .Command .CreatedAt .RunningFor .State .Status .Names .Labels .Networks .IP .Ports")
	return c
}

// options are Docker's list options for the flags: --last and --latest
// count containers in every state, as docker's do.
func (f *lsFlags) options() (docker.ContainerListOptions, error) {
	filters, err := parseFilters(f.filters)
	if err != nil {
		return docker.ContainerListOptions{}, err
	}
	opts := docker.ContainerListOptions{All: f.all, Filters: filters}
	switch {
	case f.latest:
		opts.All, opts.Limit = true, 1
	case f.last > 0:
		opts.All, opts.Limit = true, f.last
	}
	return opts, nil
}

// psTable is ls's own table, as a docker --format.
const psTable = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.IP}}\t{{.Ports}}\t{{.Names}}"

// printContainers prints the list with a --format ("" for ls's table).
func printContainers(out io.Writer, list []mobycontainer.Summary, format string, noTrunc bool) error {
	if isDefaultFormat(format) {
		format = psTable
	}
	rows := make([]map[string]string, 0, len(list))
	for _, s := range list {
		rows = append(rows, containerRow(s, noTrunc))
	}
	return printFormat(out, format, rows, containerHeaders)
}

func trunc(id string, short bool) string {
	if short && len(id) > 12 {
		return id[:12]
	}
	return id
}

func newInspectCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Show containers' details as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			var out []json.RawMessage
			for _, a := range args {
				res, err := cl.ContainerInspect(cmd.Context(), a, docker.ContainerInspectOptions{})
				if err != nil {
					return err
				}
				out = append(out, res.Raw)
			}
			b, err := json.MarshalIndent(out, "", "    ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.io.Out, string(b))
			return err
		}),
	}
}

func newLogsCmd(e *env) *cobra.Command {
	var opts docker.ContainerLogsOptions
	c := &cobra.Command{
		Use:   "logs [flags] CONTAINER",
		Short: "Show a container's output",
		Args:  cobra.ExactArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			insp, err := cl.ContainerInspect(cmd.Context(), args[0], docker.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			opts.ShowStdout, opts.ShowStderr = true, true
			rc, err := cl.ContainerLogs(cmd.Context(), insp.Container.ID, opts)
			if err != nil {
				return err
			}
			defer rc.Close()
			if insp.Container.Config != nil && insp.Container.Config.Tty {
				_, err = io.Copy(e.io.Out, rc)
			} else {
				_, err = stdcopy.StdCopy(e.io.Out, e.io.Err, rc)
			}
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}),
	}
	fl := c.Flags()
	fl.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new output")
	fl.BoolVarP(&opts.Timestamps, "timestamps", "t", false, "show timestamps")
	fl.StringVarP(&opts.Tail, "tail", "n", "all", "number of lines to show from the end")
	fl.StringVar(&opts.Since, "since", "", "show output since a time (2013-01-02T13:23:37Z) or for a duration (42m)")
	fl.StringVar(&opts.Until, "until", "", "show output before a time (2013-01-02T13:23:37Z) or a duration ago (42m)")
	return c
}

func newAttachCmd(e *env) *cobra.Command {
	var noStdin bool
	c := &cobra.Command{
		Use:   "attach [flags] CONTAINER",
		Short: "Attach to a running container's input and output",
		Args:  cobra.ExactArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			ctx := cmd.Context()
			res, err := cl.ContainerInspect(ctx, args[0], docker.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			insp := res.Container
			if insp.State == nil || !insp.State.Running {
				return fmt.Errorf("cannot attach to a stopped container, start it first")
			}
			o := session{cond: mobycontainer.WaitConditionNotRunning, stdin: !noStdin && insp.Config.OpenStdin, tty: insp.Config.Tty}
			return e.attachSession(ctx, cl, insp.ID, o, openTerminal(e.io.In))
		}),
	}
	c.Flags().BoolVar(&noStdin, "no-stdin", false, "do not attach stdin")
	return c
}

func newStatsCmd(e *env) *cobra.Command {
	var noStream bool
	c := &cobra.Command{
		Use:   "stats [flags] CONTAINER...",
		Short: "Show containers' CPU, memory and process counts",
		Args:  cobra.MinimumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			for {
				if err := printStats(cmd.Context(), e.io.Out, cl, args); err != nil {
					return err
				}
				if noStream {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		}),
	}
	c.Flags().BoolVar(&noStream, "no-stream", false, "print one sample and exit")
	return c
}

// printStats prints one sample of each container as a table.
func printStats(ctx context.Context, out io.Writer, cl *client.Client, ids []string) error {
	w := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, "CONTAINER ID\tNAME\tCPU TIME\tMEM USAGE / LIMIT\tPIDS")
	for _, id := range ids {
		res, err := cl.ContainerStats(ctx, id, docker.ContainerStatsOptions{})
		if err != nil {
			return err
		}
		var st mobycontainer.StatsResponse
		err = json.NewDecoder(res.Body).Decode(&st)
		res.Body.Close()
		if err != nil {
			return fmt.Errorf("stats of %s: %w", id, err)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s / %s\t%d\n", trunc(st.ID, true), strings.TrimPrefix(st.Name, "/"),
			time.Duration(st.CPUStats.CPUUsage.TotalUsage).Round(time.Millisecond),
			human.Bytes(int64(st.MemoryStats.Usage)), human.Bytes(int64(st.MemoryStats.Limit)), st.PidsStats.Current)
	}
	return w.Flush()
}
