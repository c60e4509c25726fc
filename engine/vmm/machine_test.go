package vmm_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
)

// fakeDriver is a vmm.Driver with no hypervisor behind it: a test
// decides what each primitive does and ends the "VM" with end.
type fakeDriver struct {
	startErr   error  // Start fails with it
	startExit  string // with startErr: the hypervisor's own message (it ended by itself)
	obeysPower bool   // RequestStop or the Shutdown hook powers the VM off
	console    string // written to the console at Start

	*vmm.Ending

	out io.Writer // the console, from Start on

	mu        sync.Mutex
	hardStops int
	requests  int
}

func newFake() *fakeDriver { return &fakeDriver{Ending: vmm.NewEnding()} }

func (f *fakeDriver) Start(ctx context.Context, console io.Writer) error {
	f.out = console
	io.WriteString(console, f.console)
	if f.startErr != nil {
		if f.startExit != "" {
			f.end(vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: f.startExit})
		}
		return f.startErr
	}
	return nil
}

func (f *fakeDriver) Dialer() transport.Dialer { return fakeDialer{} }

func (f *fakeDriver) RequestStop(ctx context.Context) error {
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	if f.obeysPower {
		f.end(vmm.Exit{Reason: vmm.ExitPowerOff, Detail: "the guest powered off"})
	}
	return nil
}

func (f *fakeDriver) HardStop(ctx context.Context) error {
	f.mu.Lock()
	f.hardStops++
	f.mu.Unlock()
	f.end(vmm.Exit{Reason: vmm.ExitKilled, Detail: "killed by signal 9"})
	return nil
}

func (f *fakeDriver) ShareFilesystem() string { return "fakefs" }
func (f *fakeDriver) GuestShare(s vmm.Share) vmm.GuestShare {
	return vmm.GuestShare{Fstype: "fakefs", Source: s.Tag}
}

func (f *fakeDriver) Backend() string { return "fake" }

func (f *fakeDriver) GuestNetwork() *vmm.GuestNetwork { return nil }

func (f *fakeDriver) SharePort(i int) (net.Conn, error) {
	return nil, errors.New("the fake driver has no share ports")
}

// end makes the fake VM gone (once).
func (f *fakeDriver) end(e vmm.Exit) { f.Finish(e, nil) }

func (f *fakeDriver) counts() (requests, hardStops int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, f.hardStops
}

// fakeDialer answers every dial with one end of a pipe: the agent is up.
type fakeDialer struct{}

func (fakeDialer) DialPort(ctx context.Context, port uint32) (net.Conn, error) {
	a, b := net.Pipe()
	b.Close()
	return a, nil
}

func fakeConfig() vmm.Config {
	return vmm.Config{ID: "fake"}
}

func startFake(t *testing.T, f *fakeDriver, cfg vmm.Config) *vmm.VM {
	t.Helper()
	m := vmm.NewVM(cfg, f)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.State() != vmm.StateRunning || m.Timeline().AgentReady.IsZero() || m.Dialer() == nil {
		t.Fatalf("after Start: state %v, timeline %+v", m.State(), m.Timeline())
	}
	return m
}

func waitExit(t *testing.T, m *vmm.VM) vmm.Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	exit, err := m.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.State() != vmm.StateStopped || m.Timeline().Stopped.IsZero() {
		t.Errorf("after the end: state %v, timeline %+v", m.State(), m.Timeline())
	}
	return exit
}

func TestVMGracefulStop(t *testing.T) {
	f := newFake()
	f.obeysPower = true
	m := startFake(t, f, fakeConfig())
	if err := m.Stop(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if exit := waitExit(t, m); exit.Reason != vmm.ExitPowerOff {
		t.Errorf("exit = %v, want poweroff", exit)
	}
	if req, hard := f.counts(); req != 1 || hard != 0 {
		t.Errorf("power button pressed %d times, hard stops %d; want 1, 0", req, hard)
	}
	// Stopping or killing a VM that is gone is not an error.
	if err := m.Stop(context.Background(), time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := m.Kill(context.Background()); err != nil {
		t.Errorf("Kill after Stop: %v", err)
	}
}

func TestVMStopUsesShutdownHook(t *testing.T) {
	f := newFake()
	cfg := fakeConfig()
	cfg.Shutdown = func(ctx context.Context, d transport.Dialer) error {
		f.end(vmm.Exit{Reason: vmm.ExitPowerOff})
		return nil
	}
	m := startFake(t, f, cfg)
	if err := m.Stop(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if req, _ := f.counts(); req != 0 {
		t.Errorf("the power button was pressed although the Shutdown hook is set")
	}
	if exit := waitExit(t, m); exit.Reason != vmm.ExitPowerOff {
		t.Errorf("exit = %v", exit)
	}
}

func TestVMGraceExpiryStopsHard(t *testing.T) {
	f := newFake() // ignores the power button
	m := startFake(t, f, fakeConfig())
	t0 := time.Now()
	if err := m.Stop(context.Background(), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 100*time.Millisecond {
		t.Errorf("Stop returned after %v, before the grace ended", d)
	}
	exit := waitExit(t, m)
	if exit.Reason != vmm.ExitKilled || !strings.Contains(exit.Detail, "did not power off within 100ms") {
		t.Errorf("exit = %v, want killed after the grace", exit)
	}
	if req, hard := f.counts(); req != 1 || hard != 1 {
		t.Errorf("requests %d, hard stops %d; want 1, 1", req, hard)
	}
}

func TestVMShutdownHookFailsStopsHard(t *testing.T) {
	f := newFake()
	cfg := fakeConfig()
	cfg.Shutdown = func(ctx context.Context, d transport.Dialer) error { return errors.New("agent gone") }
	m := startFake(t, f, cfg)
	if err := m.Stop(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if exit := waitExit(t, m); exit.Reason != vmm.ExitKilled || !strings.Contains(exit.Detail, "agent gone") {
		t.Errorf("exit = %v", exit)
	}
}

func TestVMKilledFromOutside(t *testing.T) {
	f := newFake()
	m := startFake(t, f, fakeConfig())
	f.end(vmm.Exit{Reason: vmm.ExitKilled, Detail: "qemu was killed by signal 9 from outside Berth"})
	if exit := waitExit(t, m); exit.Reason != vmm.ExitKilled || !strings.Contains(exit.Detail, "outside Berth") {
		t.Errorf("exit = %v, want the driver's account", exit)
	}
	if _, hard := f.counts(); hard != 0 {
		t.Errorf("the host stopped hard a VM that was gone")
	}
	if err := m.Kill(context.Background()); err != nil {
		t.Errorf("Kill of a gone VM: %v", err)
	}
}

func TestVMPanicOnConsole(t *testing.T) {
	f := newFake()
	f.console = "[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n"
	m := startFake(t, f, fakeConfig())
	f.end(vmm.Exit{Reason: vmm.ExitReboot, Detail: "the guest rebooted"})
	if exit := waitExit(t, m); exit.Reason != vmm.ExitPanic || !strings.Contains(exit.Detail, "Unable to mount root fs") {
		t.Errorf("exit = %v, want the panic line", exit)
	}
}

func TestVMStartFailure(t *testing.T) {
	t.Run("hypervisor refuses", func(t *testing.T) {
		f := newFake()
		f.startErr = errors.New("qmp greeting: QMP connection closed")
		f.startExit = "qemu: exit status 1: Invalid SMP CPUs 1000"
		f.console = "early line\n"
		m := vmm.NewVM(fakeConfig(), f)
		err := m.Start(context.Background())
		if err == nil {
			t.Fatal("Start succeeded")
		}
		for _, want := range []string{"Invalid SMP CPUs 1000", "QMP connection closed", "early line"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Start error lacks %q:\n%v", want, err)
			}
		}
		if exit := waitExit(t, m); exit.Reason != vmm.ExitHypervisorError || !strings.Contains(exit.Detail, "Invalid SMP") {
			t.Errorf("exit = %v, want the hypervisor's error", exit)
		}
		if _, hard := f.counts(); hard != 0 {
			t.Errorf("the host stopped hard a hypervisor that had ended")
		}
	})
	t.Run("agent never answers", func(t *testing.T) {
		f := newFake()
		cfg := fakeConfig()
		cfg.Ping = func(ctx context.Context, d transport.Dialer) error { return errors.New("no agent") }
		m := vmm.NewVM(cfg, f)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := m.Start(ctx)
		if err == nil || !strings.Contains(err.Error(), "no agent") {
			t.Fatalf("Start = %v", err)
		}
		if exit := waitExit(t, m); exit.Reason != vmm.ExitKilled {
			t.Errorf("exit = %v, want killed: the host stopped the failed start", exit)
		}
		if _, hard := f.counts(); hard != 1 {
			t.Errorf("hard stops %d, want 1", hard)
		}
	})
	t.Run("started twice", func(t *testing.T) {
		m := startFake(t, newFake(), fakeConfig())
		if err := m.Start(context.Background()); err == nil {
			t.Error("second Start succeeded")
		}
		m.Kill(context.Background())
	})
}

// TestConsoleTail: a VM's console tail is its last n lines.
func TestConsoleTail(t *testing.T) {
	f := newFake()
	f.console = "one\ntwo\nthree\nfour\n"
	m := startFake(t, f, fakeConfig())
	defer m.Kill(context.Background())
	if got := m.ConsoleTail(2); got != "three\nfour" {
		t.Errorf("ConsoleTail(2) = %q, want %q", got, "three\nfour")
	}
	if got := m.ConsoleTail(10); got != "one\ntwo\nthree\nfour" {
		t.Errorf("ConsoleTail(10) = %q", got)
	}
}

// TestVMTemplateStartWaitsForConsole: a Template VM is running once its
// console shows vmm.TemplateReady, without a ping; one that never shows
// it fails its start when ctx ends. SaveState on a driver that cannot
// save is "not implemented".
func TestVMTemplateStartWaitsForConsole(t *testing.T) {
	cfg := fakeConfig()
	cfg.Template = true
	cfg.Ping = func(ctx context.Context, d transport.Dialer) error {
		t.Error("a template VM was pinged")
		return nil
	}
	f := newFake()
	f.console = "booting\n" + vmm.TemplateReady + "\n"
	m := startFake(t, f, cfg)
	if err := m.SaveState(context.Background(), filepath.Join(t.TempDir(), "s")); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("SaveState on a fake driver: %v, want not implemented", err)
	}
	m.Kill(context.Background())

	silent := newFake()
	silent.console = "booting\n"
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	m2 := vmm.NewVM(cfg, silent)
	if err := m2.Start(ctx); err == nil || !strings.Contains(err.Error(), vmm.TemplateReady) {
		t.Errorf("template start without the ready line: %v", err)
	}
}

// TestValidateTemplateAndRestore: a VM is a template or a restore, not
// both, and neither has boot-time shares.
func TestValidateTemplateAndRestore(t *testing.T) {
	base := vmm.Config{ID: "v", StateDir: "/s", Kernel: "/k", Initramfs: "/i", Root: vmm.Disk{Path: "/r"}}
	both := base
	both.Template, both.Restore = true, "/t.state"
	shares := base
	shares.Restore = "/t.state"
	shares.Shares = []vmm.Share{{Tag: "s", HostPath: "/h"}}
	for _, c := range []vmm.Config{both, shares} {
		if _, err := c.Validate("amd64"); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Validate(template=%v restore=%q shares=%d) = %v, want invalid", c.Template, c.Restore, len(c.Shares), err)
		}
	}
}

// handoverFake is a fakeDriver that can be handed over: it records the
// Config it was handed.
type handoverFake struct {
	*fakeDriver
	to vmm.Config
}

func (h *handoverFake) Handover(ctx context.Context, to vmm.Config) error {
	h.to = to
	return nil
}

// TestVMHandover: a running VM handed over takes the new owner's Config
// (validated) and its console log (the output before stays in the old
// one); a driver that cannot hand over says "not implemented", and a VM
// that is not running cannot be handed over.
func TestVMHandover(t *testing.T) {
	dir := t.TempDir()
	valid := func(id string) vmm.Config {
		return vmm.Config{ID: id, StateDir: filepath.Join(dir, id), Kernel: "/k", Initramfs: "/i", Root: vmm.Disk{Path: "/r-" + id},
			ConsoleLog: filepath.Join(dir, id+".log"), Network: &vmm.Network{}, Restore: "/t.state"}
	}
	h := &handoverFake{fakeDriver: newFake()}
	h.console = "before\n"
	m := vmm.NewVM(valid("spare"), h)
	if err := m.Handover(context.Background(), valid("c1")); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Handover before Start: %v, want a conflict", err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Kill(context.Background())
	if err := m.Handover(context.Background(), valid("c1")); err != nil {
		t.Fatal(err)
	}
	io.WriteString(h.out, "after\n")
	if got := m.Config(); got.ID != "c1" || got.Root.Path != "/r-c1" || got.Network == nil || got.Network.MAC.String() != vmm.MACFor("c1").String() {
		t.Errorf("Config after Handover: %+v", got)
	}
	if h.to.ID != "c1" || h.to.Network.MAC.String() != vmm.MACFor("c1").String() {
		t.Errorf("the driver was handed %+v, want c1's validated Config", h.to)
	}
	for id, want := range map[string]string{"spare": "before\n", "c1": "after\n"} {
		if b, err := os.ReadFile(filepath.Join(dir, id+".log")); err != nil || string(b) != want {
			t.Errorf("console log of %s: %q, %v; want %q", id, b, err, want)
		}
	}
	if err := m.Handover(context.Background(), vmm.Config{ID: "bad id!"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Handover to an invalid Config: %v", err)
	}

	plain := startFake(t, newFake(), fakeConfig())
	defer plain.Kill(context.Background())
	if err := plain.Handover(context.Background(), valid("c2")); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("Handover on a driver without it: %v, want not implemented", err)
	}
}
