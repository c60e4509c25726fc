package daemon

import (
	"context"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/berthvm/berth/engine/api"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/version"
	"github.com/google/go-containerregistry/pkg/authn"
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
func (b backend) Events() api.Events         { return b.d.Engine.Events() }

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
	return types.Status{
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
	}, nil
}

// imageStore is the image store as api.Images.
type imageStore struct{ s *image.Store }

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
	return i.s.Pull(ctx, req.Ref, opts...)
}

func (i imageStore) List(ctx context.Context) ([]*image.Image, error) { return i.s.List(ctx) }

func (i imageStore) Get(ctx context.Context, refOrID string) (*image.Image, error) {
	return i.s.Get(ctx, refOrID)
}

func (i imageStore) Tag(ctx context.Context, source, target string) error {
	return i.s.Tag(ctx, source, target)
}

func (i imageStore) Remove(ctx context.Context, refOrID string, force bool) ([]image.DeleteItem, error) {
	var opts []image.RemoveOption
	if force {
		opts = append(opts, image.Force())
	}
	return i.s.Remove(ctx, refOrID, opts...)
}

func (i imageStore) Prune(ctx context.Context, all bool) (image.PruneReport, error) {
	var opts []image.PruneOption
	if all {
		opts = append(opts, image.PruneAll())
	}
	return i.s.Prune(ctx, opts...)
}

func (i imageStore) Import(ctx context.Context, r io.Reader) ([]*image.Image, error) {
	return i.s.Import(ctx, r)
}

func (i imageStore) Export(ctx context.Context, w io.Writer, refsOrIDs ...string) error {
	return i.s.Export(ctx, w, refsOrIDs...)
}

func (i imageStore) Login(ctx context.Context, server string, auth authn.Authenticator) error {
	return i.s.Login(ctx, server, auth)
}

// containers is the container manager as api.Containers.
type containers struct{ m *container.Manager }

func (c containers) Create(ctx context.Context, req container.CreateRequest) (string, error) {
	ct, err := c.m.Create(ctx, req)
	if err != nil {
		return "", err
	}
	return ct.ID(), nil
}

func (c containers) Inspect(ref string) (container.Snapshot, error) {
	ct, err := c.m.Get(ref)
	if err != nil {
		return container.Snapshot{}, err
	}
	return ct.Snapshot(), nil
}

func (c containers) List(all bool, keep func(container.Snapshot) bool) []container.Snapshot {
	return c.m.List(all, keep)
}

func (c containers) Start(ctx context.Context, ref string) error { return c.m.Start(ctx, ref) }

func (c containers) Stop(ctx context.Context, ref, signal string, timeout time.Duration) error {
	return c.m.Stop(ctx, ref, signal, timeout)
}

func (c containers) Restart(ctx context.Context, ref string, timeout time.Duration) error {
	return c.m.Restart(ctx, ref, timeout)
}

func (c containers) Kill(ctx context.Context, ref, signal string) error {
	return c.m.Kill(ctx, ref, signal)
}

func (c containers) Wait(ctx context.Context, ref string, cond container.WaitCondition) (int, error) {
	return c.m.Wait(ctx, ref, cond)
}

func (c containers) Resize(ctx context.Context, ref string, rows, cols uint32) error {
	return c.m.Resize(ctx, ref, rows, cols)
}

func (c containers) Rename(ref, name string) error { return c.m.Rename(ref, name) }

func (c containers) Remove(ctx context.Context, ref string, force bool) error {
	return c.m.Remove(ctx, ref, force)
}

func (c containers) Prune(ctx context.Context, keep func(container.Snapshot) bool) ([]string, error) {
	return c.m.Prune(ctx, keep)
}

func (c containers) Attach(ctx context.Context, ref string, opts container.AttachOptions) error {
	return c.m.Attach(ctx, ref, opts)
}

func (c containers) Logs(ctx context.Context, ref string, opts container.LogOptions, emit func(container.LogEntry) error) error {
	return c.m.Logs(ctx, ref, opts, emit)
}

func (c containers) Stats(ctx context.Context, ref string) (mobycontainer.StatsResponse, error) {
	return c.m.Stats(ctx, ref)
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
