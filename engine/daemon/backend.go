package daemon

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/berthvm/berth/engine/api"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/builder"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/network"
	"github.com/berthvm/berth/engine/plugin"
	"github.com/berthvm/berth/engine/terminal"
	"github.com/berthvm/berth/engine/version"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// backend adapts the engine to the API's narrow interfaces. It is the one
// place that knows the concrete image store and container manager; the
// API sees only what its handlers call.
type backend struct{ d *Daemon }

var _ api.Backend = backend{}

func (b backend) Images() api.Images         { return imageStore{b.d.Engine.Images()} }
func (b backend) Containers() api.Containers { return containers{b.d.Engine.Containers()} }
func (b backend) Execs() api.Execs           { return execs{b.d.Engine.Containers()} }
func (b backend) Volumes() api.Volumes       { return b.d.Engine.Volumes() }
func (b backend) Events() api.Events         { return b.d.Engine.Events() }
func (b backend) Terminals() api.Terminals   { return terminals{b.d} }
func (b backend) Shares() api.Shares         { return shares{b.d.Engine.Containers()} }

// Networks is nil (not a nil *network.Manager in an interface) where the
// engine has none.
func (b backend) Builder() api.Builder {
	return builderAPI{b.d.Engine.Builder()}
}

// builderAPI is the image builder as the API sees it; builds load into
// the engine's image store.
type builderAPI struct {
	m *builder.Manager
}

// Build runs the build in the builder, its result loaded into the image
// store.
func (b builderAPI) Build(ctx context.Context, req api.BuildRequest) (*image.Image, error) {
	return b.m.BuildImage(ctx, builder.BuildRequest{BuildOptions: req.BuildOptions, Context: req.Context, Progress: req.Progress})
}

func (b builderAPI) Status(context.Context) types.BuilderStatus {
	return b.m.Status()
}

func (b builderAPI) Start(ctx context.Context) error { return b.m.Start(ctx) }

func (b builderAPI) Stop(ctx context.Context) error { return b.m.Stop(ctx) }

func (b builderAPI) Prune(ctx context.Context) (string, error) { return b.m.Prune(ctx) }

func (b backend) Networks() api.Networks {
	if n := b.d.Engine.Networks(); n != nil {
		return n
	}
	return nil
}

func (b backend) Kernel(ctx context.Context) types.KernelInfo { return b.d.Engine.Kernel(ctx) }

func (b backend) SetKernel(ctx context.Context, c types.KernelChoice) (types.KernelInfo, error) {
	return b.d.Engine.SetKernel(ctx, c)
}

func (b backend) Unpack(ctx context.Context, ref, output string, size int64) error {
	return b.d.Engine.Unpack(ctx, ref, output, size)
}

// Status describes the running daemon and what its engine holds.
func (b backend) Status(ctx context.Context) (types.Status, error) {
	d := b.d
	imgs, err := d.Engine.Images().List(ctx)
	if err != nil {
		return types.Status{}, err
	}
	total, running := d.Engine.Containers().Counts()
	mode, reason := "nat", "this backend keeps the hypervisor's NAT for each VM (Berth's own networks are Linux's for now)"
	if n := d.Engine.Networks(); n != nil {
		mode, reason = n.Mode(), n.ModeReason()
		switch {
		case mode == network.ModeBridge:
			reason += "; containers reach the host at their network's gateway address, not its loopback"
		case n.HostLoopback():
			reason += "; the host's loopback is open to containers at host.berth.internal (--host-loopback)"
		default:
			reason += "; the host's loopback is closed to containers (berth daemon --host-loopback opens it)"
		}
	}
	var setup string
	switch ks := d.Engine.KernelSetup(); ks.Phase {
	case kernel.SetupDownloading, kernel.SetupUnpacking, kernel.SetupFailed:
		setup = ks.String()
	}
	return types.Status{
		Setup:             setup,
		Images:            len(imgs),
		Containers:        total,
		ContainersRunning: running,
		Version:           version.Version,
		Commit:            version.Commit,
		APIVersion:        version.APIVersion,
		MinAPIVersion:     version.MinAPIVersion,
		GoVersion:         runtime.Version(),
		OS:                runtime.GOOS,
		Arch:              runtime.GOARCH,
		PID:               os.Getpid(),
		StartedAt:         d.started,
		Home:              d.home.Dir,
		Socket:            d.home.Socket(),
		Backend:           d.Engine.Backend(),
		Kernel:            d.Engine.Kernel(ctx),
		NetworkMode:       mode,
		NetworkReason:     reason,
		FastStart:         d.Engine.FastStart(),
	}, nil
}

// imageStore is the image store as api.Images: the store's own methods
// where their signatures already match, plain parameters turned into
// its options where they do not.
type imageStore struct{ *image.Store }

func (i imageStore) Pull(ctx context.Context, req api.PullRequest) (*image.PullResult, error) {
	var opts []image.PullOption
	if req.Platform != nil {
		opts = append(opts, image.WithPlatform(*req.Platform))
	}
	if req.Auth != nil {
		opts = append(opts, image.WithAuth(req.Auth))
	}
	if req.Progress != nil {
		opts = append(opts, image.WithProgress(req.Progress))
	}
	return i.Store.Pull(ctx, req.Ref, opts...)
}

func (i imageStore) Push(ctx context.Context, req api.PushRequest) (*image.PushResult, error) {
	var opts []image.PushOption
	if req.Auth != nil {
		opts = append(opts, image.WithPushAuth(req.Auth))
	}
	if req.Progress != nil {
		opts = append(opts, image.WithPushProgress(req.Progress))
	}
	return i.Store.Push(ctx, req.Ref, opts...)
}

func (i imageStore) Remove(ctx context.Context, refOrID string, force bool) ([]image.DeleteItem, error) {
	var opts []image.RemoveOption
	if force {
		opts = append(opts, image.Force())
	}
	return i.Store.Remove(ctx, refOrID, opts...)
}

func (i imageStore) Prune(ctx context.Context, all bool) (image.PruneReport, error) {
	var opts []image.PruneOption
	if all {
		opts = append(opts, image.PruneAll())
	}
	return i.Store.Prune(ctx, opts...)
}

// containers is the container manager as api.Containers: the manager's
// own methods where their signatures already match.
type containers struct{ *container.Manager }

func (c containers) Create(ctx context.Context, req container.CreateRequest) (string, error) {
	ct, err := c.Manager.Create(ctx, req)
	if err != nil {
		return "", err
	}
	return ct.ID(), nil
}

func (c containers) Remove(ctx context.Context, ref string, opts container.RemoveOptions) error {
	return c.Manager.RemoveWith(ctx, ref, opts)
}

func (c containers) Inspect(ref string) (container.Snapshot, error) {
	ct, err := c.Manager.Get(ref)
	if err != nil {
		return container.Snapshot{}, err
	}
	return ct.Snapshot(), nil
}

// execs is the container manager's exec sessions as api.Execs.
type execs struct{ m *container.Manager }

func (e execs) Create(ctx context.Context, ref string, cfg container.ExecConfig) (string, error) {
	return e.m.CreateExec(ctx, ref, cfg)
}

func (e execs) Inspect(id string) (container.ExecState, error) {
	x, err := e.m.GetExec(id)
	if err != nil {
		return container.ExecState{}, err
	}
	return x.State(), nil
}

func (e execs) Start(ctx context.Context, id string, opts api.ExecStart) (int, error) {
	if opts.ConsoleSize != nil {
		x, err := e.m.GetExec(id)
		if err != nil {
			return 0, err
		}
		x.SetConsoleSize(*opts.ConsoleSize)
	}
	return e.m.StartExec(ctx, id, opts.Stdio)
}

func (e execs) Resize(ctx context.Context, id string, rows, cols uint32) error {
	return e.m.ResizeExec(ctx, id, rows, cols)
}

// terminals opens terminal sessions: the container must exist and run;
// the ticket is the terminal Manager's, the URL the web server's.
type terminals struct{ d *Daemon }

func (t terminals) Open(ctx context.Context, ref string, req types.TerminalRequest) (types.Terminal, error) {
	c, err := t.d.Engine.Containers().Get(ref)
	if err != nil {
		return types.Terminal{}, err
	}
	snap := c.Snapshot()
	if snap.State.Status != mobycontainer.StateRunning {
		return types.Terminal{}, errdefs.Conflict(fmt.Errorf("container %s is not running (%s): start it first (berth start %s)", ref, snap.State.Status, ref))
	}
	tk, err := t.d.terms.Issue(terminal.Options{Container: snap.Spec.ID, Cmd: req.Cmd, User: req.User, WorkDir: req.WorkDir, Detach: req.Detach})
	if err != nil {
		return types.Terminal{}, err
	}
	return types.Terminal{ID: tk.Session, URL: t.d.web.TerminalURL(tk.Token)}, nil
}

// shares adapts the container manager's run-time shares.
type shares struct{ m *container.Manager }

func (s shares) List(_ context.Context, ref string) ([]types.Share, error) {
	list, err := s.m.Shares(ref)
	if err != nil {
		return nil, err
	}
	out := make([]types.Share, 0, len(list))
	for _, sh := range list {
		out = append(out, types.Share(sh))
	}
	return out, nil
}

func (s shares) Add(ctx context.Context, ref string, sh types.Share) (types.Share, error) {
	got, err := s.m.AddShare(ctx, ref, container.RunShare(sh))
	return types.Share(got), err
}

func (s shares) Remove(ctx context.Context, ref, target string) error {
	return s.m.RemoveShare(ctx, ref, target)
}

// PluginMenu discovers the plugins where the daemon looks for service
// plugins and returns the CLI plugins' menu entries.
func (b backend) PluginMenu(ctx context.Context) []plugin.MenuItem {
	return plugin.MenuItems(plugin.Discover(ctx, b.d.discovery).Plugins)
}

// Window issues a Berth window sign-in on the web server.
func (b backend) Window(context.Context) (types.Window, error) {
	u, err := b.d.web.WindowURL()
	if err != nil {
		return types.Window{}, err
	}
	return types.Window{URL: u}, nil
}
