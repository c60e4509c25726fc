//go:build linux

package qemu_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/qemu"
)

const testinit = "github.com/berthvm/berth/engine/vmm/qemu/testdata/testinit"

// TestBootTestinit boots the Debian amd64 kernel with an initramfs whose
// init is testinit, over the virtio-serial+yamux transport, with a root
// disk, a NIC and a 9p share; talks to it; and powers it off through the
// Shutdown hook.
func TestBootTestinit(t *testing.T) {
	g := newGuest(t, "amd64", testinit, map[string]string{"marker": "root-disk-ok\n"})
	cfg := g.config(t, "boot")
	share := t.TempDir()
	os.WriteFile(filepath.Join(share, "hello"), []byte("from the host"), 0o644)
	cfg.Shares = []vmm.Share{{Tag: "share0", HostPath: share, ReadOnly: true}}
	cfg.Network = &vmm.Network{}
	cfg.Shutdown = poweroff
	var mu sync.Mutex
	var states []vmm.State
	cfg.OnState = func(s vmm.State) { mu.Lock(); states = append(states, s); mu.Unlock() }

	m, err := qemu.New(cfg, qemu.WithTransport(qemu.TransportSerial))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Kill(context.Background())
	if m.State() != vmm.StateRunning {
		t.Errorf("state after Start = %v", m.State())
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, qemu.PidFileName)); err != nil {
		t.Errorf("no pid file while running: %v", err)
	}
	tl := m.Timeline()
	if tl.Launched.IsZero() || tl.Running.Before(tl.Launched) || tl.FirstOutput.IsZero() || tl.AgentReady.Before(tl.FirstOutput) {
		t.Errorf("timeline out of order: %+v", tl)
	}
	t.Logf("boot: qemu running after %v, first console output after %v, agent after %v",
		tl.Running.Sub(tl.Launched), tl.FirstOutput.Sub(tl.Launched), tl.AgentReady.Sub(tl.Launched))

	if got, err := command(ctx, m.Dialer(), "echo", "ping 123"); err != nil || got != "ping 123" {
		t.Errorf("echo = %q, %v", got, err)
	}
	if got, err := command(ctx, m.Dialer(), "read /mnt/marker", ""); err != nil || got != "root-disk-ok\n" {
		t.Errorf("root disk marker = %q, %v", got, err)
	}
	if got, err := command(ctx, m.Dialer(), "read /share/hello", ""); err != nil || got != "from the host" {
		t.Errorf("9p share = %q, %v", got, err)
	}
	if got, err := command(ctx, m.Dialer(), "read /sys/class/net/eth0/address", ""); err != nil || strings.TrimSpace(got) != vmm.MACFor(cfg.ID).String() {
		t.Errorf("NIC MAC = %q, %v; want %s", got, err, vmm.MACFor(cfg.ID))
	}
	if m.ShareFilesystem() != "9p" {
		t.Errorf("ShareFilesystem = %q", m.ShareFilesystem())
	}

	if err := m.Stop(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	exit, err := m.Wait(ctx)
	if err != nil || exit.Reason != vmm.ExitPowerOff {
		t.Errorf("exit = %v, %v; want poweroff", exit, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, qemu.PidFileName)); !os.IsNotExist(err) {
		t.Errorf("pid file left after exit: %v", err)
	}
	if log := consoleLog(t, cfg); !strings.Contains(log, "testinit: marker root-disk-ok") {
		t.Errorf("console log lacks the marker line:\n%s", log)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []vmm.State{vmm.StateStarting, vmm.StateRunning, vmm.StateStopping, vmm.StateStopped}
	waitStates := time.Now().Add(time.Second)
	for len(states) < len(want) && time.Now().Before(waitStates) {
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
	}
	if strings.Join(stateNames(states), ",") != strings.Join(stateNames(want), ",") {
		t.Errorf("states %v, want %v", states, want)
	}
}

func stateNames(s []vmm.State) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.String()
	}
	return out
}

// TestStopHungGuest: a guest that ignores the power-off request is
// stopped hard once the grace period ends.
func TestStopHungGuest(t *testing.T) {
	g := newGuest(t, "amd64", testinit, nil)
	cfg := g.config(t, "hung")
	cfg.Cmdline = "berth.test=hang"
	cfg.Shutdown = poweroff
	m, err := qemu.New(cfg, qemu.WithTransport(qemu.TransportSerial))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Kill(context.Background())
	begin := time.Now()
	if err := m.Stop(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	exit, _ := m.Wait(ctx)
	if exit.Reason != vmm.ExitKilled || !strings.Contains(exit.Detail, "did not power off") {
		t.Errorf("exit = %v; want killed after the grace period", exit)
	}
	if took < 2*time.Second || took > 10*time.Second {
		t.Errorf("Stop took %v with a 2s grace period", took)
	}
	if !strings.Contains(consoleLog(t, cfg), "ignoring poweroff") {
		t.Error("the guest never saw the power-off request")
	}
}

// TestKilledFromOutside: QEMU killed by someone else is reported as
// killed, with the signal.
func TestKilledFromOutside(t *testing.T) {
	g := newGuest(t, "amd64", testinit, nil)
	cfg := g.config(t, "outside")
	m, err := qemu.New(cfg, qemu.WithTransport(qemu.TransportSerial))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Kill(context.Background())
	pid := pidOf(t, cfg)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	exit, err := m.Wait(ctx)
	if err != nil || exit.Reason != vmm.ExitKilled || !strings.Contains(exit.Detail, "outside Berth") || !strings.Contains(exit.Detail, "killed") {
		t.Errorf("exit = %v, %v", exit, err)
	}
	if m.State() != vmm.StateStopped {
		t.Errorf("state = %v", m.State())
	}
	if _, err := m.Dialer().DialPort(ctx, 1024); err == nil {
		t.Error("dialing a dead VM's agent succeeded")
	}
}

// TestGuestPanic: PID 1 exiting panics the kernel; Wait says panic and
// quotes the panic line.
func TestGuestPanic(t *testing.T) {
	g := newGuest(t, "amd64", testinit, nil)
	cfg := g.config(t, "panic")
	m, err := qemu.New(cfg, qemu.WithTransport(qemu.TransportSerial))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Kill(context.Background())
	command(ctx, m.Dialer(), "panic", "")
	exit, err := m.Wait(ctx)
	if err != nil || exit.Reason != vmm.ExitPanic || !strings.Contains(exit.Detail, "Attempted to kill init") {
		t.Errorf("exit = %v, %v; want panic", exit, err)
	}
}

// TestStartFailsWithConsoleTail: a kernel that cannot find its init ends
// the boot; Start fails at once with the console's last lines.
func TestStartFailsWithConsoleTail(t *testing.T) {
	g := newGuest(t, "amd64", testinit, nil)
	cfg := g.config(t, "noinit")
	cfg.Cmdline = "rdinit=/no/such/init"
	m, err := qemu.New(cfg, qemu.WithTransport(qemu.TransportSerial))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	err = m.Start(ctx)
	if err == nil {
		m.Kill(ctx)
		t.Fatal("Start succeeded without an init")
	}
	if !strings.Contains(err.Error(), "Kernel panic") || !strings.Contains(err.Error(), "ended before its agent answered") {
		t.Errorf("Start error lacks the panic and the reason:\n%v", err)
	}
	exit, _ := m.Wait(ctx)
	if exit.Reason != vmm.ExitPanic {
		t.Errorf("exit = %v", exit)
	}
}

// TestVhostVsock boots with the agent on vhost-vsock.
func TestVhostVsock(t *testing.T) {
	if !qemu.VhostVsockAvailable() {
		// A property of the host kernel, not a missing install: skipped
		// even in CI (CI's machines have no vhost_vsock either).
		t.Skip("skipped: /dev/vhost-vsock does not open here (the host kernel has no vhost_vsock); the agent uses virtio-serial+yamux instead")
	}
	g := newGuest(t, "amd64", testinit, nil)
	cfg := g.config(t, "vsock")
	m, err := qemu.New(cfg, qemu.WithTransport(qemu.TransportVsock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Kill(context.Background())
	if got, err := command(ctx, m.Dialer(), "echo", "over vsock"); err != nil || got != "over vsock" {
		t.Errorf("echo = %q, %v", got, err)
	}
}

func pidOf(t *testing.T, cfg vmm.Config) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cfg.StateDir, qemu.PidFileName))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, `"pid":`)
	if i < 0 {
		t.Fatalf("pid file %s", s)
	}
	s = s[i+6:]
	j := strings.IndexAny(s, ",}")
	pid, err := strconv.Atoi(strings.TrimSpace(s[:j]))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestStopWithoutHook: with no Shutdown hook Stop presses the ACPI power
// button (QMP system_powerdown); testinit has no handler for it, so the
// VM is stopped hard when the grace period ends.
func TestStopWithoutHook(t *testing.T) {
	g := newGuest(t, "amd64", testinit, nil)
	cfg := g.config(t, "nohook")
	m, err := qemu.New(cfg, qemu.WithTransport(qemu.TransportSerial))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Kill(context.Background())
	if err := m.Stop(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	exit, _ := m.Wait(ctx)
	if exit.Reason != vmm.ExitKilled || !strings.Contains(exit.Detail, "did not power off within 1s") {
		t.Errorf("exit = %v", exit)
	}
	// Stopping again, and killing, a VM that is gone is not an error.
	if err := m.Stop(ctx, time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := m.Kill(ctx); err != nil {
		t.Errorf("Kill after Stop: %v", err)
	}
}

// TestStartRefusedShowsQEMUMessage: when QEMU refuses the configuration
// (more vCPUs than the machine type allows), Start's error carries
// QEMU's own message, not only the QMP connection it closed.
func TestStartRefusedShowsQEMUMessage(t *testing.T) {
	g := newGuest(t, "amd64", testinit, nil)
	cfg := g.config(t, "toomanycpus")
	cfg.CPUs = 1000
	m, err := qemu.New(cfg, qemu.WithTransport(qemu.TransportSerial))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	err = m.Start(ctx)
	if err == nil {
		m.Kill(ctx)
		t.Fatal("Start succeeded with 1000 vCPUs")
	}
	if !strings.Contains(err.Error(), "CPUs") || !strings.Contains(err.Error(), "1000") {
		t.Errorf("Start error lacks QEMU's message about the vCPUs:\n%v", err)
	}
	if exit, _ := m.Wait(ctx); exit.Reason == vmm.ExitPowerOff {
		t.Errorf("exit = %v", exit)
	}
}
