package launcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/initramfs"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/backend"
)

// Launcher boots container VMs on this platform's backend. It is safe
// for concurrent use.
type Launcher struct {
	home     home.Home
	log      *slog.Logger
	cacheDir string
	digests  *digests
	kernels  *kernel.Setup

	fast        bool       // WithFastStart
	templateDir string     // WithTemplateDir, TemplateDir
	templates   *templates // in templateDir
	spareIdle   time.Duration
	spares      *spares // in home/spares
}

var _ container.VMLauncher = (*Launcher)(nil)

// New returns the Launcher for the engine on h: it boots the kernel
// kernels prepares (downloading it first if need be, one download at a
// time) and keeps boot files in h/cache.
func New(h home.Home, log *slog.Logger, kernels *kernel.Setup, opts ...Option) *Launcher {
	l := &Launcher{home: h, log: log, cacheDir: h.Path("cache"), digests: newDigests(), kernels: kernels, templateDir: TemplateDir(h), spareIdle: DefaultSpareIdle}
	for _, o := range opts {
		o(l)
	}
	l.templates = newTemplates(l.templateDir, log)
	l.templates.sweep()
	off := backend.SpareSupport()
	switch {
	case !l.fast:
		off = errors.New("fast start is off")
	case l.spareIdle <= 0:
		off = errors.New("turned off (spare idle time 0)")
	}
	l.spares = newSpares(h.Path("spares"), log, l.spareIdle, off, l.templates.busy)
	return l
}

// Close stops the spare VMs and the template builds under way in the
// background and waits for them; the VMs it launched are the
// containers'.
func (l *Launcher) Close() {
	l.spares.close()
	l.templates.close()
}

// KernelCacheDir is where kernels are fetched and unpacked
// (~/.cache/berth/kernel, where `make kernel` leaves Debian's).
func KernelCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "berth", "kernel")
	}
	return filepath.Join(os.TempDir(), "berth-kernel")
}

// TemplateDirEnv names the environment variable that sets where fast
// start's VM templates are kept (TemplateDir).
const TemplateDirEnv = "BERTH_TEMPLATE_DIR"

// TemplateDir is where fast start's VM templates are kept for the
// engine on h: $BERTH_TEMPLATE_DIR when set, else h/templates. A
// template holds a guest's memory before any container state, so it
// stays in the Berth home (0600) unless the user moves it; engines
// pointed at one directory share it (a template's name hashes everything
// it depends on: kernel, initramfs, hypervisor, VM layout, none of it a
// home's). The tests point theirs at one directory (make test).
func TemplateDir(h home.Home) string {
	if d := os.Getenv(TemplateDirEnv); d != "" {
		return d
	}
	return h.Path("templates")
}

// SweepOrphans stops the VMs an engine that died left running for the
// containers in dir (each container's directory is its VM's state
// directory) and logs each.
func (l *Launcher) SweepOrphans(ctx context.Context, dir string) {
	stale, err := backend.SweepOrphans(ctx, filepath.Join(dir, "*"))
	if err != nil {
		l.log.Warn("sweep orphaned VMs", "err", err)
	}
	for _, s := range stale {
		l.log.Warn("stopped a VM whose engine was gone", "vm", s.ID, "pid", s.PID, "killed", s.Killed)
	}
	l.spares.sweep(ctx)
}

// Prepare resolves the kernel and guestinit and returns the boot image
// and the initramfs for them, made once per content in the cache.
func (l *Launcher) Prepare(ctx context.Context) (container.BootFiles, error) {
	k, err := l.kernels.Prepare(ctx)
	if errors.Is(err, kernel.ErrFetch) {
		return container.BootFiles{}, err // it says what to do
	}
	if err != nil {
		return container.BootFiles{}, errdefs.Unavailable(fmt.Errorf("no guest kernel: %w (on Linux run `make kernel`, or `berth system kernel set --path PATH`)", err))
	}
	init, err := FindGuestinit(k.Arch)
	if err != nil {
		return container.BootFiles{}, err
	}
	img, err := k.BootImage(ctx, filepath.Join(l.cacheDir, "kernel"), kernel.WithDigest(l.digests.sum))
	if err != nil {
		return container.BootFiles{}, fmt.Errorf("prepare kernel %s: %w", k.Path, err)
	}
	ird, err := initramfs.Build(ctx, initramfs.Spec{
		Init: init, Kernel: k, Needs: backend.GuestConfigs(),
		CacheDir: filepath.Join(l.cacheDir, "initramfs"), Digest: l.digests.sum,
	})
	if err != nil {
		return container.BootFiles{}, err
	}
	return container.BootFiles{Arch: k.Arch, Kernel: img, Initramfs: ird}, nil
}

// Launch boots one container's VM (the steps are in the package doc) from
// the files Prepare made (req.Boot).
func (l *Launcher) Launch(ctx context.Context, req container.LaunchRequest) (container.VM, error) {
	if req.Boot.Kernel == "" || req.Boot.Initramfs == "" {
		return nil, fmt.Errorf("launch VM %s: no boot files (call Prepare first)", req.ID)
	}
	cfg := l.config(req)
	defer l.spares.begin()()
	if l.fast {
		if req.Cold {
			l.log.Info("fast start: booting cold as asked", "container", shortID(req.ID))
		} else {
			m, why := l.launchWarm(ctx, cfg)
			if why == nil {
				return newMachineVM(m), nil
			}
			l.log.Info("fast start: booting cold", "container", shortID(req.ID), "reason", why)
		}
	}
	m, err := backend.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	return newMachineVM(m), nil
}

// shortID is the 12-character form of a container ID, for logs.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// config is the vmm.Config of the VM req asks for.
func (l *Launcher) config(req container.LaunchRequest) vmm.Config {
	boot := req.Boot
	cfg := vmm.Config{
		ID:         req.ID,
		StateDir:   req.Dir,
		Arch:       boot.Arch,
		CPUs:       req.CPUs,
		MemoryMiB:  int(req.MemoryBytes >> 20),
		Kernel:     boot.Kernel,
		Initramfs:  boot.Initramfs,
		Root:       vmm.Disk{Path: req.Rootfs},
		Disks:      req.Disks,
		Network:    req.Network,
		ConsoleLog: req.ConsoleLog,
		Shares:     req.Shares,
		SharePorts: req.SharePorts,
		Ping:       pingAgent,
		Shutdown:   shutdownAgent,
	}
	if cfg.Network == nil && !req.NoNetwork {
		cfg.Network = &vmm.Network{} // the backend's own NAT
	}
	return cfg
}

// pingAgent is the VM's Config.Ping: one connection, one Ping call
// (vmm retries).
func pingAgent(ctx context.Context, d transport.Dialer) error {
	return withAgent(ctx, d, func(ac *agent.Client) error { return ac.Ping(ctx) })
}

// shutdownAgent is the VM's Config.Shutdown: the agent powers the guest
// off.
func shutdownAgent(ctx context.Context, d transport.Dialer) error {
	return withAgent(ctx, d, func(ac *agent.Client) error { return ac.Shutdown(ctx, false) })
}

// withAgent calls f with a client on one connection to the agent.
func withAgent(ctx context.Context, d transport.Dialer, f func(*agent.Client) error) error {
	c, err := d.DialPort(ctx, transport.AgentPort)
	if err != nil {
		return err
	}
	ac := agent.NewClient(c, d)
	defer ac.Close()
	return f(ac)
}
