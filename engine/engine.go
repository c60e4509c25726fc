// Package engine assembles Berth's engine from its parts on one Berth
// home: the image store (engine/image), the base root filesystems
// (engine/rootfs), the event bus (engine/events), the containers
// (engine/container) and the micro-VMs they run in (engine/launcher over
// engine/vmm). The daemon serves an Engine over the API socket; the
// menu-bar app hosts one in-process.
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/builder"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/engine/network"
	"github.com/berthvm/berth/engine/rootfs"
	"github.com/berthvm/berth/engine/share"
	"github.com/berthvm/berth/engine/vmm/backend"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	moby "github.com/moby/moby/api/types/events"
)

// Engine is Berth's engine on one home.
type Engine struct {
	home       home.Home
	log        *slog.Logger
	events     *events.Bus
	images     *image.Store
	rootfs     *rootfs.Cache
	containers *container.Manager
	volumes    *share.Store
	// networks is the user-mode networking (Linux); nil where VMs keep
	// the backend's NAT.
	networks *network.Manager
	// kernels prepares the guest kernel (downloading it on a Mac's first
	// run); the launcher boots what it prepares.
	kernels *kernel.Setup
	// vms launches the containers' VMs (and builds fast-start templates
	// in the background until Close).
	vms *launcher.Launcher
	// builder runs the image builder VM and serves the host's BuildKit
	// socket (h/run/buildkitd.sock).
	builder *builder.Manager

	// ctx is cancelled by Close; wg counts the goroutines the engine
	// started itself, which Close waits for.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	prune  chan struct{} // a base rootfs prune is due
}

// Option configures New.
type Option func(*options)

type options struct {
	log          *slog.Logger
	hostLoopback bool
	fastStart    bool
	spareIdle    time.Duration
	builderIdle  time.Duration
	networkMode  string
}

// WithLogger sets the engine's logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithHostLoopback lets containers reach the host's loopback services
// (127.0.0.1) at the network's host alias (network.Manager.HostAlias).
// Off by default: a container reaches what the host reaches on its
// networks, not what the host keeps to itself.
func WithHostLoopback(on bool) Option { return func(o *options) { o.hostLoopback = on } }

// The networking modes WithNetworkMode takes.
const (
	// NetworkModeUser: user-space networks, no privileges (the default).
	NetworkModeUser = network.ModeUser
	// NetworkModeBridge: Linux bridges and TAP devices; needs root or
	// CAP_NET_ADMIN (Linux).
	NetworkModeBridge = network.ModeBridge
	// NetworkModeAuto: bridge mode where the engine has the privileges
	// for it (and --host-loopback is off), user mode otherwise or when
	// setting up bridge mode fails.
	NetworkModeAuto = "auto"
)

// WithNetworkMode chooses the networking mode on Linux:
// NetworkModeUser (the default), NetworkModeBridge or NetworkModeAuto.
// `berth system status` says which is in use and why.
func WithNetworkMode(mode string) Option { return func(o *options) { o.networkMode = mode } }

// WithFastStart restores containers' VMs from saved templates instead of
// booting them where it can (engine/launcher, docs/fast-start.md),
// falling back to a cold boot (the reason logged); a container labelled
// container.ColdBootLabel=true always boots cold. On by default;
// WithFastStart(false) boots every container cold.
func WithFastStart(on bool) Option { return func(o *options) { o.fastStart = on } }

// WithSpareIdle sets how long fast start keeps a spare VM nothing
// claims (a VM restored from a template ahead of need; the next start
// of its layout takes it instead of restoring): launcher.DefaultSpareIdle
// unless set, 0 or less keeps none.
func WithSpareIdle(d time.Duration) Option { return func(o *options) { o.spareIdle = d } }

// WithBuilderIdleTimeout sets how long the image builder's VM stays up
// with no BuildKit client connected (default builder.DefaultIdleTimeout;
// negative: until the engine stops).
func WithBuilderIdleTimeout(d time.Duration) Option {
	return func(o *options) { o.builderIdle = d }
}

// New opens the engine's state under h: it creates the home if needed,
// opens the image store (h/images), the base rootfs cache (h/rootfs) and
// the named volumes (h/volumes),
// stops the VMs a dead engine left running (engine/launcher), opens the
// containers (h/containers, marking those that were running as exited),
// starts the engine's background workers (pruning base root filesystems
// of removed images; serving the image builder's BuildKit socket at
// h/run/buildkitd.sock, which starts the builder VM on first use), which
// Close stops.
func New(ctx context.Context, h home.Home, opts ...Option) (*Engine, error) {
	o := options{log: slog.Default(), fastStart: true, spareIdle: launcher.DefaultSpareIdle}
	for _, opt := range opts {
		opt(&o)
	}
	if err := h.Ensure(); err != nil {
		return nil, err
	}
	e := &Engine{home: h, log: o.log, events: events.NewBus(), prune: make(chan struct{}, 1)}
	st, err := image.Open(h.Path("images"),
		image.WithRemoveHook(func(id string) {
			e.events.Publish(events.Message{Type: moby.ImageEventType, Action: moby.ActionDelete, Actor: moby.Actor{ID: id}})
			e.requestPrune()
		}),
		image.WithInUse(func(id string) bool { return e.containers != nil && e.containers.InUse(id) }),
	)
	if err != nil {
		return nil, fmt.Errorf("open engine on %s: %w", h.Dir, err)
	}
	e.images = st
	if e.rootfs, err = rootfs.NewCache(h.Path("rootfs")); err != nil {
		st.Close()
		return nil, fmt.Errorf("open engine on %s: %w", h.Dir, err)
	}
	e.kernels = kernel.NewSetup(kernel.Options{Home: h.Dir, CacheDir: launcher.KernelCacheDir()})
	if e.volumes, err = share.NewStore(h.Path("volumes"), share.WithUsers(func() map[string][]string {
		if e.containers == nil {
			return nil
		}
		return e.containers.VolumeUsers()
	})); err != nil {
		st.Close()
		return nil, fmt.Errorf("open engine on %s: %w", h.Dir, err)
	}
	if e.networks, err = openNetworks(h, o); err != nil {
		st.Close()
		return nil, fmt.Errorf("open engine on %s: %w", h.Dir, err)
	}
	vms := launcher.New(h, o.log, e.kernels, launcher.WithFastStart(o.fastStart), launcher.WithSpareIdle(o.spareIdle))
	e.vms = vms
	vms.SweepOrphans(ctx, h.Path("containers"))
	// The image builder's VM, left by an engine that died, holds the
	// cache disk.
	if stale, err := backend.SweepOrphans(ctx, h.Path("builder")); err != nil {
		o.log.Warn("sweep an orphaned builder VM", "err", err)
	} else if len(stale) > 0 {
		o.log.Warn("stopped a builder VM whose engine was gone", "pid", stale[0].PID)
	}
	cc := container.Config{
		Dir: h.Path("containers"), Images: st, Rootfs: e.rootfs, Events: e.events, VMs: vms, Volumes: e.volumes, Log: o.log,
	}
	if e.networks != nil {
		cc.Networks = networks{e.networks}
	}
	e.containers, err = container.NewManager(ctx, cc)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("open engine on %s: %w", h.Dir, err)
	}
	if e.networks != nil {
		// Addresses of containers removed while no engine ran (or by one
		// that died before releasing them) go back to the pool.
		if err := e.networks.Keep(e.containers.Exists); err != nil {
			o.log.Warn("release the addresses of removed containers", "err", err)
		}
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	bc := builder.Config{Dir: h.Path("builder"), Socket: h.Path("run", "buildkitd.sock"),
		VMs: vms, IdleTimeout: o.builderIdle, Log: o.log, Images: st}
	if e.networks != nil {
		bc.Networks = e.networks
	}
	if e.builder, err = builder.New(bc); err != nil {
		st.Close()
		return nil, fmt.Errorf("open engine on %s: %w", h.Dir, err)
	}
	e.wg.Add(2)
	go e.pruner()
	go func() {
		defer e.wg.Done()
		if err := e.builder.Serve(e.ctx); err != nil {
			o.log.Warn("image builder socket", "err", err)
		}
	}()
	// always and unless-stopped containers come back (restart policies).
	e.containers.StartRestartable(e.ctx)
	return e, nil
}

// requestPrune asks the pruner for a pass; requests made while one is
// pending fold into it.
func (e *Engine) requestPrune() {
	select {
	case e.prune <- struct{}{}:
	default:
	}
}

// pruner runs base rootfs prunes as they are requested, until Close.
func (e *Engine) pruner() {
	defer e.wg.Done()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.prune:
			e.pruneBaseImages(e.ctx)
		}
	}
}

// pruneBaseImages drops base root filesystems whose image is gone.
func (e *Engine) pruneBaseImages(ctx context.Context) {
	imgs, err := e.images.List(ctx)
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, img := range imgs {
		keep[img.Manifest.Digest.String()] = true
	}
	if _, err := e.rootfs.Prune(ctx, func(d v1.Hash) bool { return keep[d.String()] }); err != nil && ctx.Err() == nil {
		e.log.Warn("prune base root filesystems", "err", err)
	}
}

// KernelSetup is where preparing the guest kernel stands, as a plain
// value a status display shows: "Setting up Berth… 43 %" while the pinned
// default kernel downloads on a Mac's first run, the error and what to do
// when that failed.
func (e *Engine) KernelSetup() kernel.SetupState { return e.kernels.State() }

// PrepareKernel makes the guest kernel ready in the background (on a
// Mac's first run, downloading, verifying and unpacking the pinned
// default), so the first container does not wait for it. KernelSetup
// follows it; Close stops it. A container started meanwhile waits for
// the same download rather than starting its own.
func (e *Engine) PrepareKernel() {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if _, err := e.kernels.Prepare(e.ctx); err != nil && e.ctx.Err() == nil {
			e.log.Warn("prepare the guest kernel", "err", err)
		}
	}()
}

// Backend names the VM backend and the accelerator containers run under
// ("qemu (kvm)", "qemu (tcg)", "vz"): the backend's own decision, the
// one its VMs get.
func (e *Engine) Backend() string { return backend.Describe() }

// FastStart says whether containers' VMs are restored from templates
// (WithFastStart) and lists the templates kept.
func (e *Engine) FastStart() types.FastStartStatus { return e.vms.FastStartStatus() }

// Networks is the user-mode networking; nil where containers' VMs keep
// the backend's own NAT (macOS, for now).
func (e *Engine) Networks() *network.Manager { return e.networks }

// Containers is the container manager.
func (e *Engine) Containers() *container.Manager { return e.containers }

// Volumes is the named volume store (h/volumes).
func (e *Engine) Volumes() *share.Store { return e.volumes }

// Rootfs is the base root filesystem cache.
func (e *Engine) Rootfs() *rootfs.Cache { return e.rootfs }

// Home is the engine's home.
func (e *Engine) Home() home.Home { return e.home }

// Images is the image store.
func (e *Engine) Images() *image.Store { return e.images }

// Events is the event bus.
func (e *Engine) Events() *events.Bus { return e.events }

// Builder is the image builder.
func (e *Engine) Builder() *builder.Manager { return e.builder }

// Close stops the engine's background work, waits for it to end, and
// releases what New opened (the image store's lock). Running containers
// are not stopped: the daemon's VMs die with its process. The image
// builder's VM is shut down (its cache disk synced).
func (e *Engine) Close() error {
	e.containers.Close()
	e.builder.Close()
	e.cancel()
	e.wg.Wait()
	if e.vms != nil {
		e.vms.Close()
	}
	if e.networks != nil {
		e.networks.Close()
	}
	return e.images.Close()
}
