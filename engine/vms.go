package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/initramfs"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/backend"
)

// GuestinitEnv names the environment variable that points at the
// guestinit binary to boot (overriding the search next to the berth
// executable).
const GuestinitEnv = "BERTH_GUESTINIT"

// vmLauncher boots container VMs on this platform's backend: it resolves
// the kernel, builds (or reuses) the initramfs around guestinit, and
// starts a vmm.Machine that is ready once guestinit's agent answers.
type vmLauncher struct {
	home     home.Home
	log      *slog.Logger
	cacheDir string
}

func newVMLauncher(h home.Home, log *slog.Logger) *vmLauncher {
	return &vmLauncher{home: h, log: log, cacheDir: h.Path("cache")}
}

// KernelCacheDir is where kernels are fetched and unpacked
// (~/.cache/berth/kernel, where `make kernel` leaves Debian's).
func KernelCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "berth", "kernel")
	}
	return filepath.Join(os.TempDir(), "berth-kernel")
}

// ResolveKernel finds the guest kernel the engine boots (see
// kernel.Resolve for the order).
func ResolveKernel(ctx context.Context, h home.Home) (*kernel.Kernel, error) {
	return kernel.Resolve(ctx, kernel.Options{Home: h.Dir, CacheDir: KernelCacheDir()})
}

// FindGuestinit returns the guestinit binary for arch: $BERTH_GUESTINIT,
// else guestinit-linux-ARCH next to the running executable, or in the app
// bundle's Resources.
func FindGuestinit(arch string) (string, error) {
	if p := os.Getenv(GuestinitEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w", GuestinitEnv, err)
		}
		return p, nil
	}
	name := "guestinit-linux-" + arch
	var tried []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, "..", "Resources", name)} {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			tried = append(tried, p)
		}
	}
	return "", errdefs.Unavailable(fmt.Errorf("no guestinit for linux/%s: looked at $%s and %s; build it with `make guest`", arch, GuestinitEnv, strings.Join(tried, ", ")))
}

// Launch boots one container's VM.
func (l *vmLauncher) Launch(ctx context.Context, req container.LaunchRequest) (container.VM, error) {
	k, err := ResolveKernel(ctx, l.home)
	if err != nil {
		return nil, errdefs.Unavailable(fmt.Errorf("no guest kernel: %w (on Linux run `make kernel`, or `berth system kernel set --path PATH`)", err))
	}
	initPath, err := FindGuestinit(k.Arch)
	if err != nil {
		return nil, err
	}
	bootImage, err := k.BootImage(ctx, filepath.Join(l.cacheDir, "kernel"))
	if err != nil {
		return nil, fmt.Errorf("prepare kernel %s: %w", k.Path, err)
	}
	initrd, err := initramfs.Build(ctx, initramfs.Spec{Init: initPath, Kernel: k, Needs: backend.GuestConfigs(), CacheDir: filepath.Join(l.cacheDir, "initramfs")})
	if err != nil {
		return nil, err
	}
	cfg := vmm.Config{
		ID:         req.ID,
		StateDir:   req.Dir,
		Arch:       k.Arch,
		CPUs:       req.CPUs,
		MemoryMiB:  int(req.MemoryBytes >> 20),
		Kernel:     bootImage,
		Initramfs:  initrd,
		Root:       vmm.Disk{Path: req.Rootfs},
		Network:    &vmm.Network{},
		ConsoleLog: req.ConsoleLog,
		Ping: func(ctx context.Context, d transport.Dialer) error {
			c, err := d.DialPort(ctx, transport.AgentPort)
			if err != nil {
				return err
			}
			ac := agent.NewClient(c, d)
			defer ac.Close()
			return ac.Ping(ctx)
		},
		Shutdown: func(ctx context.Context, d transport.Dialer) error {
			c, err := d.DialPort(ctx, transport.AgentPort)
			if err != nil {
				return err
			}
			ac := agent.NewClient(c, d)
			defer ac.Close()
			return ac.Shutdown(ctx, false)
		},
	}
	m, err := backend.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	vm := &machineVM{m: m, cfg: cfg, done: make(chan struct{})}
	go func() {
		exit, err := m.Wait(context.Background())
		vm.mu.Lock()
		switch {
		case err != nil:
			vm.err = err
		case exit.Reason != vmm.ExitPowerOff:
			vm.err = errors.New(exit.String())
		}
		vm.mu.Unlock()
		close(vm.done)
	}()
	return vm, nil
}

// machineVM adapts a vmm.Machine to what a container drives.
type machineVM struct {
	m    vmm.Machine
	cfg  vmm.Config
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func (v *machineVM) Dialer() transport.Dialer { return v.m.Dialer() }

func (v *machineVM) Network() *agentpb.ConfigureNetworkRequest { return guestNetwork() }

func (v *machineVM) Pid() int {
	if p, ok := v.m.(interface{ Pid() int }); ok {
		return p.Pid()
	}
	return os.Getpid()
}

func (v *machineVM) Backend() string { return BackendName() }

func (v *machineVM) Done() <-chan struct{} { return v.done }

func (v *machineVM) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

func (v *machineVM) Kill() error { return v.m.Kill(context.Background()) }

// ConsoleTail returns the last n lines of the console log.
func (v *machineVM) ConsoleTail(n int) string {
	f, err := os.Open(v.cfg.ConsoleLog)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
