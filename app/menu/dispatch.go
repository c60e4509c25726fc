package menu

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/berthvm/berth/app/internal/human"
	"github.com/berthvm/berth/app/settings"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/plugin"
	"github.com/berthvm/berth/engine/terminal"
	cerrdefs "github.com/containerd/errdefs"
	mobycontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	docker "github.com/moby/moby/client"
)

// Dispatcher performs Actions against the engine through its API. Its
// methods are safe for concurrent use; the glue calls Do off the main
// thread, since every action waits for the engine.
type Dispatcher struct {
	api   API
	state *State
	cli   []string // the berth command for Terminal.app, with its --home
	login LoginSetter

	mu     sync.Mutex
	pulls  map[string]context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

// DispatcherOption configures a Dispatcher.
type DispatcherOption func(*Dispatcher)

// WithCLI sets the berth executable (and the home, when not the
// default) that Terminal.app commands run; the default is "berth" on
// PATH with the default home.
func WithCLI(path, home string) DispatcherOption {
	return func(d *Dispatcher) {
		d.cli = []string{path}
		if home != "" {
			d.cli = append(d.cli, "--home", home)
		}
	}
}

// LoginSetter turns Launch at Login on or off and says the outcome:
// the app's settings.LaunchAtLogin.
type LoginSetter interface {
	Set(on bool) (settings.LoginState, error)
}

// WithLaunchAtLogin sets what SetLaunchAtLogin acts on; without it the
// action is refused as unavailable.
func WithLaunchAtLogin(l LoginSetter) DispatcherOption {
	return func(d *Dispatcher) { d.login = l }
}

// NewDispatcher returns a Dispatcher acting through api and reporting
// pulls, kernel downloads and expected container deaths into state.
func NewDispatcher(api API, state *State, opts ...DispatcherOption) *Dispatcher {
	d := &Dispatcher{api: api, state: state, cli: []string{"berth"}, pulls: map[string]context.CancelFunc{}}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Close cancels the pulls in progress and waits for them to end. Do
// refuses pulls after Close.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	d.closed = true
	for _, cancel := range d.pulls {
		cancel()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// Do performs a and returns what the glue shows, or an error that names
// the action and its subject. An action that needs a dialog must have
// its input (WithInput). Do returns when the engine has done the action;
// a pull returns when the image is stored, reporting progress into the
// State meanwhile. The State learns the outcome from the engine's
// events.
func (d *Dispatcher) Do(ctx context.Context, a Action) (Result, error) {
	switch a.Kind {
	case None:
		return Result{}, nil
	case OpenShell:
		t, err := d.api.OpenTerminal(ctx, a.Container, types.TerminalRequest{})
		if err != nil {
			return Result{}, fmt.Errorf("open a shell in %s: %w", a.subject(), err)
		}
		return Result{URL: t.URL}, nil
	case OpenInTerminal:
		return Result{TerminalCommand: d.command("shell", a.ref())}, nil
	case RunPlugin:
		if !plugin.ValidName(a.Plugin) {
			return Result{}, errdefs.InvalidArgument(fmt.Errorf("run plugin %q: not a plugin name", a.Plugin))
		}
		return Result{TerminalCommand: d.command(append([]string{a.Plugin}, a.PluginArgs...)...)}, nil
	case ShowLogs:
		return Result{TerminalCommand: d.command("logs", "--follow", "--tail", "200", a.ref())}, nil
	case ShareFolder:
		return d.shareFolder(ctx, a)
	case StopSharing:
		return d.stopSharing(ctx, a)
	case CopyIP:
		return d.copyIP(ctx, a)
	case StartContainer:
		if _, err := d.api.ContainerStart(ctx, a.Container, docker.ContainerStartOptions{}); err != nil {
			return Result{}, fmt.Errorf("start %s: %w", a.subject(), err)
		}
		return Result{Message: "Started " + a.subject()}, nil
	case StopContainer:
		d.state.expectDeath(a.Container)
		if _, err := d.api.ContainerStop(ctx, a.Container, docker.ContainerStopOptions{}); err != nil {
			return Result{}, fmt.Errorf("stop %s: %w", a.subject(), err)
		}
		return Result{Message: "Stopped " + a.subject()}, nil
	case RestartContainer:
		d.state.expectDeath(a.Container)
		if _, err := d.api.ContainerRestart(ctx, a.Container, docker.ContainerRestartOptions{}); err != nil {
			return Result{}, fmt.Errorf("restart %s: %w", a.subject(), err)
		}
		return Result{Message: "Restarted " + a.subject()}, nil
	case RemoveContainer:
		if a.Force {
			d.state.expectDeath(a.Container)
		}
		if _, err := d.api.ContainerRemove(ctx, a.Container, docker.ContainerRemoveOptions{Force: a.Force}); err != nil {
			return Result{}, fmt.Errorf("remove %s: %w", a.subject(), err)
		}
		return Result{Message: "Removed " + a.subject()}, nil
	case RunImage:
		return d.run(ctx, a)
	case RunShell:
		return d.runShell(ctx, a)
	case RemoveImage:
		if _, err := d.api.ImageRemove(ctx, a.Image, docker.ImageRemoveOptions{}); err != nil {
			return Result{}, fmt.Errorf("remove image %s: %w", a.Image, err)
		}
		return Result{Message: "Removed " + a.Image}, nil
	case PullImage:
		if a.Ref == "" {
			return Result{}, errdefs.InvalidArgument(errors.New("pull: the Pull Image dialog was not filled"))
		}
		if err := d.pull(ctx, a.Ref); err != nil {
			return Result{}, err
		}
		return Result{Message: "Pulled " + a.Ref}, nil
	case CancelPull:
		d.mu.Lock()
		cancel, ok := d.pulls[a.Ref]
		d.mu.Unlock()
		if !ok {
			return Result{}, errdefs.NotFound(fmt.Errorf("cancel pull: no pull of %s in progress", a.Ref))
		}
		cancel()
		return Result{Message: "Cancelled the pull of " + a.Ref}, nil
	case DismissPull:
		d.state.removePull(a.Ref)
		return Result{}, nil
	case SetUpKernel:
		return d.setUpKernel(ctx, a.Kernel)
	case OpenLog:
		p := d.state.Snapshot().Engine.LogPath
		if p == "" {
			return Result{}, errdefs.NotFound(errors.New("open log: this Berth has no log file"))
		}
		return Result{OpenPath: p}, nil
	case OpenWindow:
		return Result{Window: BerthWindow}, nil
	case OpenSettings:
		return Result{Window: SettingsWindow}, nil
	case Quit:
		return d.quit(ctx, a)
	case SetLaunchAtLogin:
		return d.setLaunchAtLogin(a.Enable)
	}
	return Result{}, errdefs.InvalidArgument(fmt.Errorf("unknown action %v", a.Kind))
}

// userMessage is err as the menu shows it: without the prefix Docker's
// client puts on every engine error, and without the subject the menu
// line already names ("pull REF: ").
func userMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "Error response from daemon: ")
	if rest, ok := strings.CutPrefix(msg, "pull "); ok {
		if ref, after, ok := strings.Cut(rest, ": "); ok && !strings.Contains(ref, " ") {
			msg = after
		}
	}
	return msg
}

// subject names the container an action acts on.
func (a Action) subject() string {
	if a.Name != "" {
		return a.Name
	}
	return human.ShortID(a.Container)
}

// ref is how a command line names the container.
func (a Action) ref() string {
	if a.Name != "" {
		return a.Name
	}
	return a.Container
}

// command is the berth command line with args, shell-quoted for
// Terminal.app.
func (d *Dispatcher) command(args ...string) string {
	var words []string
	for _, w := range append(append([]string{}, d.cli...), args...) {
		words = append(words, shellQuote(w))
	}
	return strings.Join(words, " ")
}

// shellQuote quotes w for a POSIX shell when it needs quoting.
func shellQuote(w string) string {
	if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@+,") == "" {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// copyIP reads the container's address now (not from the menu's copy).
func (d *Dispatcher) copyIP(ctx context.Context, a Action) (Result, error) {
	c, found, err := d.state.inspect(ctx, a.Container)
	if err != nil {
		return Result{}, fmt.Errorf("copy IP of %s: %w", a.subject(), err)
	}
	if !found {
		return Result{}, errdefs.NotFound(fmt.Errorf("copy IP: no container %s", a.subject()))
	}
	if c.IP == "" {
		return Result{}, errdefs.Conflict(fmt.Errorf("copy IP: %s has no IP address: it is %s; start it first", a.subject(), c.State))
	}
	return Result{Copy: c.IP, Message: "Copied " + c.IP}, nil
}

// shareFolder shares a.HostPath with the container through the engine
// (which checks the folder, picks /mnt/<folder name> and records the
// share) and says where it is: in the container now, or at its next
// start when it is not running.
func (d *Dispatcher) shareFolder(ctx context.Context, a Action) (Result, error) {
	if a.HostPath == "" {
		return Result{}, errdefs.InvalidArgument(fmt.Errorf("share a folder with %s: no folder chosen", a.subject()))
	}
	sh, err := d.api.AddShare(ctx, a.Container, types.Share{Source: a.HostPath})
	if err != nil {
		return Result{}, fmt.Errorf("share %s with %s: %w", a.HostPath, a.subject(), err)
	}
	msg := "Shared " + sh.Source + " with " + a.subject() + " at " + sh.Target
	c, found, err := d.state.inspect(ctx, a.Container)
	if err == nil && found && !c.Running() {
		msg += " (from its next start)"
	}
	return Result{Message: msg}, nil
}

// stopSharing ends the share at a.Share.ContainerPath: the engine
// unmounts it in a running container and forgets it.
func (d *Dispatcher) stopSharing(ctx context.Context, a Action) (Result, error) {
	if a.Share.ContainerPath == "" {
		return Result{}, errdefs.InvalidArgument(fmt.Errorf("stop sharing with %s: no share named", a.subject()))
	}
	if a.Share.AtCreate {
		return Result{}, errdefs.InvalidArgument(fmt.Errorf("stop sharing %s with %s: it was shared when the container was created (-v or --mount) and lasts as long as the container; remove and recreate the container without it", a.Share.ContainerPath, a.subject()))
	}
	if err := d.api.RemoveShare(ctx, a.Container, a.Share.ContainerPath); err != nil {
		return Result{}, fmt.Errorf("stop sharing %s with %s: %w", a.Share.HostPath, a.subject(), err)
	}
	return Result{Message: "Stopped sharing " + a.Share.HostPath + " with " + a.subject()}, nil
}

// create creates a container from opts, pulling its image (with
// progress in the State) when it is not here, as docker run does.
func (d *Dispatcher) create(ctx context.Context, opts docker.ContainerCreateOptions) (string, error) {
	res, err := d.api.ContainerCreate(ctx, opts)
	if err != nil && cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "No such image") {
		if perr := d.pull(ctx, opts.Config.Image); perr != nil {
			return "", perr
		}
		res, err = d.api.ContainerCreate(ctx, opts)
	}
	if err != nil {
		return "", fmt.Errorf("create a container of %s: %w", opts.Config.Image, err)
	}
	return res.ID, nil
}

// run creates and starts a container of a.Image in the background.
func (d *Dispatcher) run(ctx context.Context, a Action) (Result, error) {
	if a.Image == "" {
		return Result{}, errdefs.InvalidArgument(errors.New("run: the Run Image dialog was not filled"))
	}
	id, err := d.create(ctx, docker.ContainerCreateOptions{Name: a.Run.Name, Config: &mobycontainer.Config{Image: a.Image, Cmd: a.Run.Cmd}})
	if err != nil {
		return Result{}, err
	}
	if _, err := d.api.ContainerStart(ctx, id, docker.ContainerStartOptions{}); err != nil {
		return Result{Container: id}, fmt.Errorf("start the container of %s: %w", a.Image, err)
	}
	return Result{Container: id, Message: "Started a container of " + a.Image}, nil
}

// runShell starts a container of a.Image whose main process is a shell
// waiting on its open stdin (as `run -d -t -i IMAGE`, with the
// entrypoint cleared) and opens a terminal session on it.
func (d *Dispatcher) runShell(ctx context.Context, a Action) (Result, error) {
	// The same request as the CLI's run -d -t -i --entrypoint "".
	cfg := &mobycontainer.Config{Image: a.Image, Cmd: terminal.DefaultShell(), Entrypoint: []string{},
		Tty: true, OpenStdin: true, StdinOnce: true, AttachStdin: true}
	id, err := d.create(ctx, docker.ContainerCreateOptions{Config: cfg})
	if err != nil {
		return Result{}, err
	}
	if _, err := d.api.ContainerStart(ctx, id, docker.ContainerStartOptions{}); err != nil {
		return Result{Container: id}, fmt.Errorf("start a shell container of %s: %w", a.Image, err)
	}
	t, err := d.api.OpenTerminal(ctx, id, types.TerminalRequest{})
	if err != nil {
		return Result{Container: id}, fmt.Errorf("open a shell in the container of %s: %w", a.Image, err)
	}
	return Result{Container: id, URL: t.URL}, nil
}

// pull pulls ref, keeping its progress in the State: removed when it
// succeeds, kept with the error when it fails (until dismissed). A
// notice says how it ended. A second pull of a ref in progress is a
// conflict.
func (d *Dispatcher) pull(ctx context.Context, ref string) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errdefs.Unavailable(fmt.Errorf("pull %s: Berth is quitting", ref))
	}
	if _, busy := d.pulls[ref]; busy {
		d.mu.Unlock()
		return errdefs.Conflict(fmt.Errorf("pull %s: already in progress", ref))
	}
	ctx, cancel := context.WithCancel(ctx)
	d.pulls[ref] = cancel
	d.wg.Add(1)
	d.mu.Unlock()
	defer func() {
		cancel()
		d.mu.Lock()
		delete(d.pulls, ref)
		d.mu.Unlock()
		d.wg.Done()
	}()

	d.state.setPull(Progress{Subject: ref})
	err := d.pullStream(ctx, ref)
	if err != nil {
		if ctx.Err() != nil { // cancelled: Cancel Pull, Quit, or the caller
			d.state.removePull(ref)
			return fmt.Errorf("pull %s: cancelled: %w", ref, err)
		}
		msg := userMessage(err)
		d.state.setPull(Progress{Subject: ref, Err: msg})
		d.state.notify(Notice{Title: "Pull of " + ref + " failed", Body: msg, Err: true})
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	d.state.removePull(ref)
	d.state.notify(Notice{Title: "Pulled " + ref})
	return nil
}

// pullStream runs the pull and folds its per-layer messages into one
// Progress; an error message in the stream is the pull's error.
func (d *Dispatcher) pullStream(ctx context.Context, ref string) error {
	resp, err := d.api.ImagePull(ctx, ref, docker.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	var agg pullAggregate
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return fmt.Errorf("read progress: %w", err)
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
		if agg.add(m) {
			d.state.setPull(agg.progress(ref))
		}
	}
	return ctx.Err()
}

// pullAggregate folds a pull's per-layer progress messages into totals.
type pullAggregate struct {
	layers map[string]*layerProgress
	order  []string
}

type layerProgress struct {
	current, total int64
	done           bool
}

// add takes one message and reports whether the totals changed.
func (p *pullAggregate) add(m jsonstream.Message) bool {
	if m.ID == "" || strings.HasPrefix(m.Status, "Pulling from ") {
		return false
	}
	if p.layers == nil {
		p.layers = map[string]*layerProgress{}
	}
	l, ok := p.layers[m.ID]
	if !ok {
		l = &layerProgress{}
		p.layers[m.ID] = l
		p.order = append(p.order, m.ID)
	}
	before := *l
	if pr := m.Progress; pr != nil {
		if pr.Total > 0 {
			l.total = pr.Total
		}
		if pr.Current > 0 {
			l.current = pr.Current
		}
	}
	switch m.Status {
	case "Download complete", "Pull complete", "Already exists":
		l.done = true
		if l.total > 0 {
			l.current = l.total
		}
	}
	return !ok || *l != before
}

// progress is the pull's Progress: bytes over the layers whose size is
// known (unknown sizes make the total unknown), and layers done.
func (p *pullAggregate) progress(ref string) Progress {
	pr := Progress{Subject: ref, Layers: len(p.order)}
	known := true
	for _, id := range p.order {
		l := p.layers[id]
		if l.done {
			pr.LayersDone++
		}
		if l.total <= 0 && !l.done {
			known = false
		}
		pr.Current += l.current
		pr.Total += l.total
	}
	if !known {
		pr.Current, pr.Total = 0, 0
	}
	return pr
}

// setUpKernel sets the guest kernel and refreshes the State's kernel
// status. The engine records a .deb URL and fetches it at the first
// container start, so there is no download to show here.
func (d *Dispatcher) setUpKernel(ctx context.Context, k types.KernelChoice) (Result, error) {
	if k.Path == "" && k.URL == "" {
		return Result{}, errdefs.InvalidArgument(errors.New("set up kernel: the dialog was not filled"))
	}
	subject := k.Path + k.URL
	info, err := d.api.SetKernel(ctx, k)
	if err != nil {
		return Result{}, fmt.Errorf("set up kernel %s: %w", subject, err)
	}
	d.state.refreshKernel(ctx)
	if info.Error != "" {
		return Result{}, errdefs.InvalidArgument(fmt.Errorf("set up kernel %s: %s", subject, info.Error))
	}
	if info.Version == "" {
		return Result{Message: "Berth fetches the kernel at the first container start"}, nil
	}
	return Result{Message: "Berth boots Linux " + info.Version}, nil
}

// setLaunchAtLogin turns Launch at Login on or off and reports the
// setting's state, changed or not, into the State.
func (d *Dispatcher) setLaunchAtLogin(on bool) (Result, error) {
	if d.login == nil {
		return Result{}, errdefs.Unavailable(errors.New("launch at login: " + settings.ReasonNoSystem))
	}
	st, err := d.login.Set(on)
	d.state.SetLaunchAtLogin(st)
	switch {
	case err != nil:
		return Result{}, err
	case st.Pending:
		return Result{Message: st.Reason}, nil
	case st.On:
		return Result{Message: "Berth opens at login"}, nil
	}
	return Result{Message: "Berth no longer opens at login"}, nil
}

// quit cancels the pulls in progress and, when asked, stops the running
// containers (all at once, each as docker stop does) before telling the
// glue to shut the engine down.
func (d *Dispatcher) quit(ctx context.Context, a Action) (Result, error) {
	d.Close()
	if !a.StopContainers {
		return Result{Quit: true}, nil
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, c := range d.state.Snapshot().Containers {
		if !c.Running() {
			continue
		}
		d.state.expectDeath(c.ID)
		wg.Go(func() {
			if _, err := d.api.ContainerStop(ctx, c.ID, docker.ContainerStopOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("stop %s: %w", c.Name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// Quit even when a stop failed: the engine's shutdown ends the VM.
	return Result{Quit: true}, errors.Join(errs...)
}
