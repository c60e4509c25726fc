package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/pkg/stdcopy"
	mobycontainer "github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"
)

// createFlags are the flags of run and create.
type createFlags struct {
	tty, interactive, detach, rm, readOnly bool
	init                                   bool
	name, workdir, user, entrypoint        string
	hostname, pull                         string
	env, envFiles, labels                  []string
	cpus                                   float64
	memory                                 string
}

func (f *createFlags) register(c *cobra.Command, run bool) {
	fl := c.Flags()
	fl.SetInterspersed(false) // flags after the image belong to the command
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open")
	if run {
		fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the container ID")
	}
	fl.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fl.BoolVar(&f.readOnly, "read-only", false, "mount the container's root filesystem read-only")
	fl.BoolVar(&f.init, "init", false, "run an init as the container's PID 1 that reaps orphans and forwards signals")
	fl.StringVar(&f.name, "name", "", "name the container")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "user (name|uid[:group|gid])")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "override the image's entrypoint")
	fl.StringVar(&f.hostname, "hostname", "", "container host name")
	fl.StringVar(&f.pull, "pull", "missing", "pull the image: missing, always or never")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (KEY=VALUE, or KEY to pass the local value)")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "set a label (KEY=VALUE)")
	fl.Float64Var(&f.cpus, "cpus", 0, "number of vCPUs of the container's VM (default 2)")
	fl.StringVarP(&f.memory, "memory", "m", "", "memory of the container's VM (e.g. 512m, 2g; default 1g)")
}

// request builds Docker's create request from the flags, the image and
// the command.
func (f *createFlags) request(c *cobra.Command, img string, cmd []string) (mobycontainer.CreateRequest, error) {
	cfg := &mobycontainer.Config{
		Image: img, Cmd: cmd, Tty: f.tty, OpenStdin: f.interactive, StdinOnce: f.interactive,
		AttachStdin: f.interactive, AttachStdout: !f.detach, AttachStderr: !f.detach,
		WorkingDir: f.workdir, User: f.user, Hostname: f.hostname,
	}
	if c.Flags().Changed("entrypoint") {
		cfg.Entrypoint = []string{}
		if f.entrypoint != "" {
			cfg.Entrypoint = []string{f.entrypoint}
		}
	}
	env, err := readEnv(f.envFiles, f.env)
	if err != nil {
		return mobycontainer.CreateRequest{}, err
	}
	cfg.Env = env
	if len(f.labels) > 0 {
		cfg.Labels = map[string]string{}
		for _, l := range f.labels {
			k, v, _ := strings.Cut(l, "=")
			if k == "" {
				return mobycontainer.CreateRequest{}, fmt.Errorf("invalid label %q: want KEY=VALUE", l)
			}
			cfg.Labels[k] = v
		}
	}
	hc := &mobycontainer.HostConfig{AutoRemove: f.rm, ReadonlyRootfs: f.readOnly}
	if c.Flags().Changed("init") {
		hc.Init = &f.init
	}
	if f.cpus < 0 {
		return mobycontainer.CreateRequest{}, fmt.Errorf("invalid --cpus %g: must be positive", f.cpus)
	}
	hc.NanoCPUs = int64(f.cpus * 1e9)
	if f.memory != "" {
		n, err := units.RAMInBytes(f.memory)
		if err != nil {
			return mobycontainer.CreateRequest{}, fmt.Errorf("invalid --memory %q: %w", f.memory, err)
		}
		hc.Memory = n
	}
	switch f.pull {
	case "missing", "always", "never":
	default:
		return mobycontainer.CreateRequest{}, fmt.Errorf("invalid --pull %q: use missing, always or never", f.pull)
	}
	return mobycontainer.CreateRequest{Config: cfg, HostConfig: hc}, nil
}

// readEnv reads env files then -e values; "KEY" alone takes the local
// value, as Docker does.
func readEnv(files, vals []string) ([]string, error) {
	var out []string
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read env file %s: %w", p, err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			out = append(out, envValue(line)...)
		}
	}
	for _, v := range vals {
		out = append(out, envValue(v)...)
	}
	return out, nil
}

func envValue(kv string) []string {
	if strings.Contains(kv, "=") {
		return []string{kv}
	}
	if v, ok := os.LookupEnv(kv); ok {
		return []string{kv + "=" + v}
	}
	return nil
}

// createContainer creates the container, pulling the image first per
// policy (progress on stderr), as `docker run` does.
func (e *env) createContainer(ctx context.Context, cl *client.Client, f *createFlags, req mobycontainer.CreateRequest) (string, error) {
	pull := func() error {
		pp := newPullProgress(e.io.Err)
		err := cl.PullImage(ctx, req.Config.Image, "", pp.handle)
		pp.done()
		return err
	}
	if f.pull == "always" {
		if err := pull(); err != nil {
			return "", err
		}
	}
	id, err := cl.ContainerCreate(ctx, f.name, req)
	if err != nil && client.IsNotFound(err) && strings.Contains(err.Error(), "No such image") && f.pull == "missing" {
		fmt.Fprintf(e.io.Err, "Unable to find image '%s' locally\n", req.Config.Image)
		if perr := pull(); perr != nil {
			return "", perr
		}
		id, err = cl.ContainerCreate(ctx, f.name, req)
	}
	return id, err
}

// startError maps a start failure to Docker's exit codes: 127 for a
// command not found, 126 for one that cannot run, else 125.
func startError(err error) error {
	msg := err.Error()
	// The daemon words a command that cannot run as Docker does:
	// `exec: "CMD": executable file not found in $PATH` / `…: permission denied`.
	switch {
	case strings.Contains(msg, "executable file not found"):
		return &exitWithMessage{code: 127, err: err}
	case strings.Contains(msg, "exec: ") && strings.Contains(msg, "permission denied"):
		return &exitWithMessage{code: 126, err: err}
	}
	return &exitWithMessage{code: 125, err: err}
}

// exitWithMessage prints err and exits with code.
type exitWithMessage struct {
	code int
	err  error
}

func (e *exitWithMessage) Error() string { return e.err.Error() }

// createFromArgs builds the create request from the flags and
// IMAGE [COMMAND] [ARG...] and creates the container (pulling per
// policy); consoleSize, when set, is the terminal's (rows, cols). Failures
// are Docker's exit code 125.
func (e *env) createFromArgs(cmd *cobra.Command, f *createFlags, args []string, consoleSize [2]uint) (*client.Client, string, error) {
	cl, err := e.client()
	if err != nil {
		return nil, "", err
	}
	req, err := f.request(cmd, args[0], args[1:])
	if err != nil {
		return nil, "", &exitWithMessage{code: 125, err: err}
	}
	req.HostConfig.ConsoleSize = consoleSize
	id, err := e.createContainer(cmd.Context(), cl, f, req)
	if err != nil {
		return nil, "", &exitWithMessage{code: 125, err: err}
	}
	return cl, id, nil
}

func newRunCmd(e *env) *cobra.Command {
	f := &createFlags{}
	c := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND] [ARG...]",
		Short: "Create and start a container, each in its own micro-VM",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t := openTerminal(e.io.In)
			var size [2]uint
			if f.tty && t != nil {
				if r, c := t.size(); r > 0 {
					size = [2]uint{r, c}
				}
			}
			cl, id, err := e.createFromArgs(cmd, f, args, size)
			if err != nil {
				return err
			}
			if f.detach {
				if err := cl.ContainerStart(cmd.Context(), id); err != nil {
					return startError(err)
				}
				fmt.Fprintln(e.io.Out, id)
				return nil
			}
			return e.runAttached(cmd.Context(), cl, id, f, t)
		},
	}
	f.register(c, true)
	return c
}

// session is how the CLI joins a container's streams.
type session struct {
	// cond is the wait condition whose exit code the session returns.
	cond       string
	stdin, tty bool
	// start starts the container once attached (run, start -a).
	start bool
}

// runAttached attaches to a created container, starts it and relays its
// streams until it exits, then exits with its code.
func (e *env) runAttached(ctx context.Context, cl *client.Client, id string, f *createFlags, t *terminal) error {
	cond := "next-exit"
	if f.rm {
		cond = "removed"
	}
	return e.attachSession(ctx, cl, id, session{cond: cond, stdin: f.interactive, tty: f.tty, start: true}, t)
}

// attachSession asks for the exit code first (so a quick exit is not
// missed), attaches, puts the terminal in raw mode for an interactive tty,
// optionally starts the container, follows the window size, relays the
// streams until the output ends, restores the terminal and returns the
// container's exit code as an ExitError.
func (e *env) attachSession(ctx context.Context, cl *client.Client, id string, o session, t *terminal) error {
	waitCh, err := cl.ContainerWait(ctx, id, o.cond)
	if err != nil {
		return err
	}
	hj, err := cl.ContainerAttach(ctx, id, o.stdin)
	if err != nil {
		return err
	}
	defer hj.Close()
	if o.tty && o.stdin && t != nil {
		if err := t.raw(); err != nil {
			return err
		}
		defer t.restore()
	}
	if o.start {
		if err := cl.ContainerStart(ctx, id); err != nil {
			t.restore()
			return startError(err)
		}
	}
	if o.tty {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		t.watchResize(rctx, func(r, c uint) { _ = cl.ContainerResize(ctx, id, r, c) })
	}
	relay(e.io, hj, o.stdin, o.tty)
	t.restore()
	res := <-waitCh
	if res.Err != nil {
		return res.Err
	}
	return &ExitError{Code: res.Code}
}

// relay copies stdin into a hijacked stream and its output to stdout and
// stderr until the output ends.
func relay(stdio IO, hj *client.Hijacked, stdin, tty bool) {
	if stdin && stdio.In != nil {
		go func() {
			_, _ = io.Copy(hj, stdio.In)
			_ = hj.CloseWrite()
		}()
	}
	if tty {
		_, _ = io.Copy(stdio.Out, hj)
	} else {
		_, _ = stdcopy.StdCopy(stdio.Out, stdio.Err, hj)
	}
}

func newCreateCmd(e *env) *cobra.Command {
	f := &createFlags{}
	c := &cobra.Command{
		Use:   "create [flags] IMAGE [COMMAND] [ARG...]",
		Short: "Create a container without starting it",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, id, err := e.createFromArgs(cmd, f, args, [2]uint{})
			if err != nil {
				return err
			}
			fmt.Fprintln(e.io.Out, id)
			return nil
		},
	}
	f.register(c, false)
	return c
}

// eachContainer runs fn for every argument, printing each name that
// succeeded (as Docker does) and collecting the errors.
func (e *env) eachContainer(cmd *cobra.Command, args []string, fn func(ctx context.Context, cl *client.Client, id string) error) error {
	cl, err := e.client()
	if err != nil {
		return err
	}
	var errs []string
	for _, id := range args {
		if err := fn(cmd.Context(), cl, id); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		fmt.Fprintln(e.io.Out, id)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

func newStartCmd(e *env) *cobra.Command {
	var attach, interactive bool
	c := &cobra.Command{
		Use:   "start [flags] CONTAINER...",
		Short: "Start stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if attach && len(args) == 1 {
				cl, err := e.client()
				if err != nil {
					return err
				}
				insp, err := cl.ContainerInspect(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				f := &createFlags{tty: insp.Config.Tty, interactive: interactive}
				return e.runAttached(cmd.Context(), cl, insp.ID, f, openTerminal(e.io.In))
			}
			return e.eachContainer(cmd, args, func(ctx context.Context, cl *client.Client, id string) error {
				if err := cl.ContainerStart(ctx, id); err != nil {
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

func newStopCmd(e *env) *cobra.Command {
	var signal string
	var timeout int
	c := &cobra.Command{
		Use:   "stop [flags] CONTAINER...",
		Short: "Stop containers: the stop signal, then SIGKILL after the timeout",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t := time.Duration(-1)
			if cmd.Flags().Changed("time") {
				t = time.Duration(timeout) * time.Second
			}
			return e.eachContainer(cmd, args, func(ctx context.Context, cl *client.Client, id string) error {
				return cl.ContainerStop(ctx, id, signal, t)
			})
		},
	}
	c.Flags().StringVarP(&signal, "signal", "s", "", "signal to send (default: the container's stop signal, SIGTERM)")
	c.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait before killing")
	return c
}

func newRestartCmd(e *env) *cobra.Command {
	var timeout int
	c := &cobra.Command{
		Use:   "restart [flags] CONTAINER...",
		Short: "Restart containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t := time.Duration(-1)
			if cmd.Flags().Changed("time") {
				t = time.Duration(timeout) * time.Second
			}
			return e.eachContainer(cmd, args, func(ctx context.Context, cl *client.Client, id string) error {
				return cl.ContainerRestart(ctx, id, t)
			})
		},
	}
	c.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait before killing")
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
				return cl.ContainerKill(ctx, id, signal)
			})
		},
	}
	c.Flags().StringVarP(&signal, "signal", "s", "", "signal to send")
	return c
}

func newRmCmd(e *env) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "rm [flags] CONTAINER...",
		Aliases: []string{"delete"},
		Short:   "Remove containers",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.eachContainer(cmd, args, func(ctx context.Context, cl *client.Client, id string) error {
				return cl.ContainerRemove(ctx, id, force)
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "stop a running container first")
	return c
}

func newLsCmd(e *env) *cobra.Command {
	var all, quiet, noTrunc bool
	var filters []string
	c := &cobra.Command{
		Use:     "ls [flags]",
		Aliases: []string{"ps", "list"},
		Short:   "List containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			fm := map[string][]string{}
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					return fmt.Errorf("invalid filter %q: want KEY=VALUE", f)
				}
				fm[k] = append(fm[k], v)
			}
			list, err := cl.ContainerList(cmd.Context(), all, fm)
			if err != nil {
				return err
			}
			if quiet {
				for _, s := range list {
					fmt.Fprintln(e.io.Out, trunc(s.ID, !noTrunc))
				}
				return nil
			}
			w := tabwriter.NewWriter(e.io.Out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tIP\tNAMES")
			for _, s := range list {
				cmdline := s.Command
				if !noTrunc && len(cmdline) > 20 {
					cmdline = cmdline[:19] + "…"
				}
				ip := ""
				if s.NetworkSettings != nil {
					for _, ep := range s.NetworkSettings.Networks {
						if ep != nil && ep.IPAddress.IsValid() {
							ip = ep.IPAddress.String()
						}
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%q\t%s\t%s\t%s\t%s\n", trunc(s.ID, !noTrunc), s.Image, cmdline,
					ago(time.Unix(s.Created, 0)), s.Status, ip, strings.TrimPrefix(strings.Join(s.Names, ","), "/"))
			}
			return w.Flush()
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "show all containers, not only running ones")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show IDs")
	c.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate output")
	c.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter (label=KEY[=VALUE], status=STATE, name=NAME, id=ID, ancestor=IMAGE)")
	return c
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
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			var out []json.RawMessage
			for _, a := range args {
				raw, err := cl.ContainerInspectRaw(cmd.Context(), a)
				if err != nil {
					return err
				}
				out = append(out, raw)
			}
			b, err := json.MarshalIndent(out, "", "    ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.io.Out, string(b))
			return err
		},
	}
}

func newLogsCmd(e *env) *cobra.Command {
	var follow, timestamps bool
	var tail string
	c := &cobra.Command{
		Use:   "logs [flags] CONTAINER",
		Short: "Show a container's output",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			insp, err := cl.ContainerInspect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			q := url.Values{"stdout": {"1"}, "stderr": {"1"}, "follow": {strconv.FormatBool(follow)}, "timestamps": {strconv.FormatBool(timestamps)}, "tail": {tail}}
			rc, err := cl.ContainerLogs(cmd.Context(), insp.ID, q)
			if err != nil {
				return err
			}
			defer rc.Close()
			if insp.Config != nil && insp.Config.Tty {
				_, err = io.Copy(e.io.Out, rc)
			} else {
				_, err = stdcopy.StdCopy(e.io.Out, e.io.Err, rc)
			}
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	c.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "show timestamps")
	c.Flags().StringVarP(&tail, "tail", "n", "all", "number of lines to show from the end")
	return c
}

func newExecCmd(e *env) *cobra.Command {
	var tty, interactive, detach bool
	var envs []string
	var workdir, user string
	c := &cobra.Command{
		Use:   "exec [flags] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			env, err := readEnv(nil, envs)
			if err != nil {
				return err
			}
			t := openTerminal(e.io.In)
			req := mobycontainer.ExecCreateRequest{Cmd: args[1:], Env: env, WorkingDir: workdir, User: user, Tty: tty,
				AttachStdin: interactive, AttachStdout: !detach, AttachStderr: !detach}
			if tty && t != nil {
				if r, c := t.size(); r > 0 {
					req.ConsoleSize = &[2]uint{r, c}
				}
			}
			execID, err := cl.ExecCreate(ctx, args[0], req)
			if err != nil {
				return err
			}
			if detach {
				_, err := cl.ExecStart(ctx, execID, mobycontainer.ExecStartRequest{Detach: true})
				return err
			}
			if tty && interactive && t != nil {
				if err := t.raw(); err != nil {
					return err
				}
				defer t.restore()
			}
			hj, err := cl.ExecStart(ctx, execID, mobycontainer.ExecStartRequest{Tty: tty, ConsoleSize: req.ConsoleSize})
			if err != nil {
				return err
			}
			defer hj.Close()
			if tty {
				rctx, cancel := context.WithCancel(ctx)
				defer cancel()
				t.watchResize(rctx, func(r, c uint) { _ = cl.ExecResize(ctx, execID, r, c) })
			}
			relay(e.io, hj, interactive, tty)
			t.restore()
			st, err := cl.ExecInspect(ctx, execID)
			if err != nil {
				return err
			}
			if st.ExitCode != nil && *st.ExitCode != 0 {
				return &ExitError{Code: *st.ExitCode}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open")
	fl.BoolVarP(&detach, "detach", "d", false, "run in the background")
	fl.StringArrayVarP(&envs, "env", "e", nil, "set an environment variable")
	fl.StringVarP(&workdir, "workdir", "w", "", "working directory")
	fl.StringVarP(&user, "user", "u", "", "user (name|uid[:group|gid])")
	return c
}

func newWaitCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER...",
		Short: "Wait for containers to stop and print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			for _, id := range args {
				ch, err := cl.ContainerWait(cmd.Context(), id, "not-running")
				if err != nil {
					return err
				}
				res := <-ch
				if res.Err != nil {
					return res.Err
				}
				fmt.Fprintln(e.io.Out, res.Code)
			}
			return nil
		},
	}
}

func newAttachCmd(e *env) *cobra.Command {
	var noStdin bool
	c := &cobra.Command{
		Use:   "attach [flags] CONTAINER",
		Short: "Attach to a running container's input and output",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			insp, err := cl.ContainerInspect(ctx, args[0])
			if err != nil {
				return err
			}
			if insp.State == nil || !insp.State.Running {
				return fmt.Errorf("cannot attach to a stopped container, start it first")
			}
			o := session{cond: "not-running", stdin: !noStdin && insp.Config.OpenStdin, tty: insp.Config.Tty}
			return e.attachSession(ctx, cl, insp.ID, o, openTerminal(e.io.In))
		},
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
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			for {
				w := tabwriter.NewWriter(e.io.Out, 0, 4, 3, ' ', 0)
				fmt.Fprintln(w, "CONTAINER ID\tNAME\tCPU TIME\tMEM USAGE / LIMIT\tPIDS")
				for _, id := range args {
					st, err := cl.ContainerStats(cmd.Context(), id)
					if err != nil {
						return err
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s / %s\t%d\n", trunc(st.ID, true), strings.TrimPrefix(st.Name, "/"),
						time.Duration(st.CPUStats.CPUUsage.TotalUsage).Round(time.Millisecond),
						humanBytes(int64(st.MemoryStats.Usage)), humanBytes(int64(st.MemoryStats.Limit)), st.PidsStats.Current)
				}
				w.Flush()
				if noStream {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		},
	}
	c.Flags().BoolVar(&noStream, "no-stream", false, "print one sample and exit")
	return c
}

func newPruneCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove all stopped containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			rep, err := cl.ContainerPrune(cmd.Context())
			if err != nil {
				return err
			}
			if len(rep.ContainersDeleted) > 0 {
				fmt.Fprintln(e.io.Out, "Deleted Containers:")
				for _, id := range rep.ContainersDeleted {
					fmt.Fprintln(e.io.Out, id)
				}
			}
			return nil
		},
	}
}
