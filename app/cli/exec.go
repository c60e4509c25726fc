package cli

import (
	"context"

	"github.com/berthvm/berth/engine/api/client"
	docker "github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// execFlags are the flags of exec (docker's names).
type execFlags struct {
	tty, interactive, detach bool
	env, envFiles            []string
	workdir, user            string
}

func newExecCmd(e *env) *cobra.Command {
	f := &execFlags{}
	c := &cobra.Command{
		Use:   "exec [flags] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			return e.exec(cmd.Context(), cl, f, args[0], args[1:])
		}),
	}
	fl := c.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open")
	fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory")
	fl.StringVarP(&f.user, "user", "u", "", "user (name|uid[:group|gid])")
	return c
}

// exec runs argv in container id: detached, or joined to this terminal
// until it ends, returning its exit code as an ExitError.
func (e *env) exec(ctx context.Context, cl *client.Client, f *execFlags, id string, argv []string) error {
	env, err := readEnv(f.envFiles, f.env)
	if err != nil {
		return err
	}
	t := openTerminal(e.io.In)
	opts := docker.ExecCreateOptions{Cmd: argv, Env: env, WorkingDir: f.workdir, User: f.user, TTY: f.tty,
		AttachStdin: f.interactive, AttachStdout: !f.detach, AttachStderr: !f.detach}
	if f.tty && t != nil {
		if r, c := t.size(); r > 0 {
			opts.ConsoleSize = docker.ConsoleSize{Height: r, Width: c}
		}
	}
	created, err := cl.ExecCreate(ctx, id, opts)
	if err != nil {
		return err
	}
	if f.detach {
		_, err := cl.ExecStart(ctx, created.ID, docker.ExecStartOptions{Detach: true})
		return err
	}
	if f.tty && f.interactive && t != nil {
		if err := t.raw(); err != nil {
			return err
		}
		defer t.restore()
	}
	hj, err := cl.ExecAttach(ctx, created.ID, docker.ExecAttachOptions{TTY: f.tty, ConsoleSize: opts.ConsoleSize})
	if err != nil {
		return err
	}
	defer hj.Close()
	if f.tty {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		t.watchResize(rctx, func(r, c uint) {
			_, _ = cl.ExecResize(ctx, created.ID, docker.ExecResizeOptions{Height: r, Width: c})
		})
	}
	relay(e.io, &hj.HijackedResponse, f.interactive, f.tty)
	t.restore()
	st, err := cl.ExecInspect(ctx, created.ID, docker.ExecInspectOptions{})
	if err != nil {
		return err
	}
	if st.ExitCode != 0 {
		return &ExitError{Code: st.ExitCode}
	}
	return nil
}
