package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/berthvm/berth/engine/api/client"
	mobycontainer "github.com/moby/moby/api/types/container"
	docker "github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// eachContainer runs fn for every argument, printing each name that
// succeeded (as Docker does) and collecting the errors.
func (e *env) eachContainer(cmd *cobra.Command, args []string, fn func(ctx context.Context, cl *client.Client, id string) error) error {
	cl, err := e.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	var errs []error
	for _, id := range args {
		if err := fn(cmd.Context(), cl, id); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(e.io.Out, id)
	}
	return errors.Join(errs...)
}

func newStartCmd(e *env) *cobra.Command {
	var attach, interactive bool
	c := &cobra.Command{
		Use:   "start [flags] CONTAINER...",
		Short: "Start stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if attach && len(args) == 1 {
				return e.startAttached(cmd.Context(), args[0], interactive)
			}
			return e.eachContainer(cmd, args, func(ctx context.Context, cl *client.Client, id string) error {
				if _, err := cl.ContainerStart(ctx, id, docker.ContainerStartOptions{}); err != nil {
					return startError(err)
				}
				return nil
			})
		},
	}
	c.Flags().BoolVarP(&attach, "attach", "a", false, "attach to the output and wait for the exit")
	c.Flags().BoolVarP(&interactive, "interactive", "i", false, "attach stdin")
	return c
}

// startAttached is `start -a`: start one container attached to its
// streams, as run does.
func (e *env) startAttached(ctx context.Context, name string, interactive bool) error {
	cl, err := e.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	insp, err := cl.ContainerInspect(ctx, name, docker.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	f := &createFlags{tty: insp.Container.Config.Tty, interactive: interactive}
	return e.runAttached(ctx, cl, insp.Container.ID, f, openTerminal(e.io.In))
}

// stopFlags are docker's flags of stop and restart: -s/--signal and
// -t/--timeout (--time, its older name, still works).
type stopFlags struct {
	signal  string
	timeout int
}

func (f *stopFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVarP(&f.signal, "signal", "s", "", "signal to send (default: the container's stop signal, SIGTERM)")
	fl.IntVarP(&f.timeout, "timeout", "t", 10, "seconds to wait before killing")
	fl.IntVar(&f.timeout, "time", 10, "seconds to wait before killing")
	_ = fl.MarkHidden("time")
}

// timeoutOpt is the timeout to send: nil for the container's own unless
// a flag set it.
func (f *stopFlags) timeoutOpt(c *cobra.Command) *int {
	if c.Flags().Changed("timeout") || c.Flags().Changed("time") {
		return &f.timeout
	}
	return nil
}

func newStopCmd(e *env) *cobra.Command {
	f := &stopFlags{}
	c := &cobra.Command{
		Use:   "stop [flags] CONTAINER...",
		Short: "Stop containers: the stop signal, then SIGKILL after the timeout",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := docker.ContainerStopOptions{Signal: f.signal, Timeout: f.timeoutOpt(cmd)}
			return e.eachContainer(cmd, args, func(ctx context.Context, cl *client.Client, id string) error {
				_, err := cl.ContainerStop(ctx, id, opts)
				return err
			})
		},
	}
	f.register(c)
	return c
}

func newRestartCmd(e *env) *cobra.Command {
	f := &stopFlags{}
	c := &cobra.Command{
		Use:   "restart [flags] CONTAINER...",
		Short: "Restart containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := docker.ContainerRestartOptions{Signal: f.signal, Timeout: f.timeoutOpt(cmd)}
			return e.eachContainer(cmd, args, func(ctx context.Context, cl *client.Client, id string) error {
				_, err := cl.ContainerRestart(ctx, id, opts)
				return err
			})
		},
	}
	f.register(c)
	return c
}

func newKillCmd(e *env) *cobra.Command {
	var signal string
	c := &cobra.Command{
		Use:   "kill [flags] CONTAINER...",
		Short: "Send a signal to containers' main processes (default SIGKILL)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.eachContainer(cmd, args, func(ctx context.Context, cl *client.Client, id string) error {
				_, err := cl.ContainerKill(ctx, id, docker.ContainerKillOptions{Signal: signal})
				return err
			})
		},
	}
	c.Flags().StringVarP(&signal, "signal", "s", "", "signal to send")
	return c
}

func newRmCmd(e *env) *cobra.Command {
	var force, all, volumes bool
	c := &cobra.Command{
		Use:     "rm [flags] CONTAINER...",
		Aliases: []string{"delete"},
		Short:   "Remove containers",
		Args: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				return fmt.Errorf("--all removes every container: name none, or leave out --all")
			}
			if !all && len(args) == 0 {
				return fmt.Errorf("%q requires at least 1 container, or --all", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if all {
				var err error
				if args, err = e.removable(cmd.Context(), force); err != nil {
					return err
				}
			}
			opts := docker.ContainerRemoveOptions{Force: force, RemoveVolumes: volumes}
			return e.eachContainer(cmd, args, func(ctx context.Context, cl *client.Client, id string) error {
				_, err := cl.ContainerRemove(ctx, id, opts)
				return err
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "stop a running container first")
	c.Flags().BoolVarP(&all, "all", "a", false, "remove every stopped container (with --force, running ones too)")
	c.Flags().BoolVarP(&volumes, "volumes", "v", false, "remove the container's anonymous volumes (Berth creates none)")
	return c
}

// removable lists the names of the containers rm --all removes: the ones
// not running, and with force every one.
func (e *env) removable(ctx context.Context, force bool) ([]string, error) {
	cl, err := e.client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	res, err := cl.ContainerList(ctx, docker.ContainerListOptions{All: true})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range res.Items {
		switch s.State {
		case mobycontainer.StateRunning, mobycontainer.StatePaused, mobycontainer.StateRestarting:
			if !force {
				continue
			}
		}
		names = append(names, containerName(s))
	}
	return names, nil
}

// containerName is a listed container's name, or its short ID if it has
// none.
func containerName(s mobycontainer.Summary) string {
	for _, n := range s.Names {
		if len(n) > 1 {
			return n[1:]
		}
	}
	return trunc(s.ID, true)
}

func newWaitCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER...",
		Short: "Wait for containers to stop and print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			for _, id := range args {
				exit, err := waitExit(cmd.Context(), cl, id, mobycontainer.WaitConditionNotRunning)
				if err != nil {
					return err
				}
				code, err := exit()
				if err != nil {
					return err
				}
				fmt.Fprintln(e.io.Out, code)
			}
			return nil
		}),
	}
}

func newPruneCmd(e *env) *cobra.Command {
	var force bool
	var filters []string
	c := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Remove all stopped containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFilters(filters)
			if err != nil {
				return err
			}
			cl, err := e.client()
			if err != nil {
				return err
			}
			defer cl.Close()
			res, err := cl.ContainerPrune(cmd.Context(), docker.ContainerPruneOptions{Filters: f})
			if err != nil {
				return err
			}
			if len(res.Report.ContainersDeleted) > 0 {
				fmt.Fprintln(e.io.Out, "Deleted Containers:")
				for _, id := range res.Report.ContainersDeleted {
					fmt.Fprintln(e.io.Out, id)
				}
			}
			return nil
		},
	}
	forceFlag(c, &force)
	c.Flags().StringArrayVar(&filters, "filter", nil, "only containers with this label (label=KEY[=VALUE])")
	return c
}
