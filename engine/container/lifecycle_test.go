package container

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/internal/atomicfile"
	"github.com/berthvm/berth/internal/testenv"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// lifecycle is a Manager over fake VMs (fake_test.go), with short
// timeouts; its containers are made directly (no image store), as
// Create would leave them.
type lifecycle struct {
	m   *Manager
	vms *fakeLauncher
	bus *events.Bus
}

func newLifecycle(t *testing.T) *lifecycle {
	t.Helper()
	l := &lifecycle{vms: &fakeLauncher{t: t}, bus: events.NewBus()}
	m, err := NewManager(context.Background(), Config{
		Dir: settledTempDir(t), VMs: l.vms, Events: l.bus,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Limits: HostLimits{CPUs: 8, MemoryBytes: 8 << 30},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.timeouts = timeouts{boot: 2 * time.Second, lostAgent: 100 * time.Millisecond, drain: time.Second, powerOff: 300 * time.Millisecond, kill: 300 * time.Millisecond}
	l.m = m
	return l
}

// add makes a created container running cmd; edit may change its spec.
func (l *lifecycle) add(t *testing.T, name string, cmd []string, edit func(*Spec)) *Container {
	t.Helper()
	id := NewID()
	spec := Spec{
		ID: id, Name: name, Created: time.Now().UTC(), Image: "fake",
		Config:     &mobycontainer.Config{Hostname: id[:12]},
		HostConfig: &mobycontainer.HostConfig{},
		Path:       cmd[0], Args: cmd[1:],
	}
	if edit != nil {
		edit(&spec)
	}
	dir := filepath.Join(l.m.dir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, "config.json"), spec); err != nil {
		t.Fatal(err)
	}
	c := newContainer(dir, spec, State{Status: mobycontainer.StateCreated})
	if err := c.saveStateLocked(); err != nil {
		t.Fatal(err)
	}
	l.m.mu.Lock()
	l.m.byID[id] = c
	l.m.names[name] = id
	l.m.mu.Unlock()
	return c
}

// actions are the actions of the events published for c so far.
func (l *lifecycle) actions(c *Container) []string {
	past, _ := l.bus.Subscribe(cancelled(), time.Unix(1, 0), func(m events.Message) bool { return m.Actor.ID == c.ID() })
	var out []string
	for _, m := range past {
		out = append(out, string(m.Action))
	}
	return out
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// waitExit waits for c's run to end and returns its state then.
func (l *lifecycle) waitExit(t *testing.T, c *Container) State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.m.Wait(ctx, c.ID(), WaitNotRunning); err != nil {
		t.Fatalf("wait: %v", err)
	}
	return c.Snapshot().State
}

func (l *lifecycle) logs(t *testing.T, c *Container) string {
	t.Helper()
	var b strings.Builder
	err := l.m.Logs(context.Background(), c.ID(), LogOptions{Stdout: true, Stderr: true, Tail: -1}, func(e LogEntry) error {
		b.WriteString(e.Stream + ":" + e.Log)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRunToExit: a started container boots its VM with the asked size,
// configures the guest, runs the process with its output in the log,
// records its exit code, powers the VM off cleanly and publishes start
// then die.
func TestRunToExit(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	c := l.add(t, "hello", []string{"echo", "hello"}, func(s *Spec) {
		s.HostConfig.NanoCPUs = 1_500_000_000
		s.HostConfig.Memory = 256 << 20
		s.HostConfig.ReadonlyRootfs = true
		s.HostConfig.ExtraHosts = []string{"db:10.0.0.9"}
	})
	if err := l.m.Start(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	st := l.waitExit(t, c)
	if st.Status != mobycontainer.StateExited || st.ExitCode != 0 || st.Error != "" || st.Pid != 0 {
		t.Fatalf("state after exit: %+v", st)
	}
	if st.IPAddress != "10.0.2.15" || st.Boot == nil || st.Boot.Backend != "fake" || st.Boot.GuestAgentServing != time.Millisecond {
		t.Fatalf("start record: ip %q boot %+v", st.IPAddress, st.Boot)
	}
	if got := l.logs(t, c); got != "stdout:hello\n" {
		t.Fatalf("log %q", got)
	}
	vm := l.vms.last()
	if vm.wasKilled() || vm.Err() != nil {
		t.Fatalf("VM not powered off cleanly: killed %v, err %v", vm.wasKilled(), vm.Err())
	}
	if req := l.vms.requests[0]; req.CPUs != 2 || req.MemoryBytes != 256<<20 || req.Rootfs != filepath.Join(c.dir, "rootfs.ext4") {
		t.Fatalf("launch request %+v", req)
	}
	g := vm.guest
	g.mu.Lock()
	network, mounts := g.network, g.mounts
	g.mu.Unlock()
	if network.Hostname != c.ID()[:12] || len(network.Hosts) != 1 || network.Hosts[0].Ip != "10.0.0.9" {
		t.Fatalf("network %+v", network)
	}
	if len(mounts) != 1 || mounts[0].Target != "/" || !slices.Contains(mounts[0].Options, "ro") {
		t.Fatalf("read-only root not mounted: %+v", mounts)
	}
	if got := l.actions(c); !slices.Equal(got, []string{"start", "die"}) {
		t.Fatalf("events %v", got)
	}
	// On disk too.
	var onDisk State
	if err := readJSON(filepath.Join(c.dir, "state.json"), &onDisk); err != nil || onDisk.Status != mobycontainer.StateExited || onDisk.Starting {
		t.Fatalf("state.json: %+v %v", onDisk, err)
	}
}

// TestStopAndKillStates: exit codes, stop with the stop signal, and the
// answers Docker gives for stop and kill of a stopped container.
func TestStopAndKillStates(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	exit3 := l.add(t, "three", []string{"exit", "3"}, nil)
	if err := l.m.Start(ctx, "three"); err != nil {
		t.Fatal(err)
	}
	if st := l.waitExit(t, exit3); st.ExitCode != 3 || st.Error != "" {
		t.Fatalf("exit 3: %+v", st)
	}

	c := l.add(t, "sleeper", []string{"sleep"}, func(s *Spec) { s.Config.StopSignal = "SIGINT" })
	if err := l.m.Start(ctx, "sleeper"); err != nil {
		t.Fatal(err)
	}
	if err := l.m.Start(ctx, "sleeper"); !errors.Is(err, ErrNotModified) {
		t.Fatalf("start of a running container: %v", err)
	}
	if s := c.Snapshot().State; s.Status != mobycontainer.StateRunning || s.Pid != 4242 {
		t.Fatalf("running state: %+v", s)
	}
	if err := l.m.Stop(ctx, "sleeper", "", -1); err != nil {
		t.Fatal(err)
	}
	st := c.Snapshot().State
	if st.Status != mobycontainer.StateExited || st.ExitCode != 130 || st.Error != "" {
		t.Fatalf("after stop with SIGINT: %+v", st)
	}
	if err := l.m.Stop(ctx, "sleeper", "", -1); !errors.Is(err, ErrNotModified) {
		t.Fatalf("stop of a stopped container: %v", err)
	}
	err := l.m.Kill(ctx, "sleeper", "")
	if !errors.Is(err, errdefs.ErrConflict) || errdefs.HTTPStatus(err) != 409 || !strings.Contains(err.Error(), "is not running") {
		t.Fatalf("kill of a stopped container: %v", err)
	}
	if err := l.m.Stop(ctx, "sleeper", "SIGNOPE", -1); err != ErrNotModified {
		t.Fatalf("stop of a stopped container with a bad signal: %v", err)
	}
	if got := l.actions(c); !slices.Equal(got, []string{"start", "die", "stop"}) {
		t.Fatalf("events %v", got)
	}
}

// TestKillSignals: kill delivers the signal it is given; only SIGKILL
// counts as the engine ending the run.
func TestKillSignals(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	c := l.add(t, "k", []string{"stubborn"}, nil)
	if err := l.m.Start(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := l.m.Kill(ctx, "k", "SIGNOPE"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad signal: %v", err)
	}
	if err := l.m.Kill(ctx, "k", "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if err := l.m.Kill(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	st := l.waitExit(t, c)
	if st.ExitCode != 137 || st.Error != "" {
		t.Fatalf("after kill: %+v", st)
	}
	p, _ := l.vms.last().guest.proc(mainProcess)
	if got := p.signalsReceived(); !slices.Equal(got, []int32{1, 9}) {
		t.Fatalf("signals %v", got)
	}
}

// TestStopGraceExpiry: a process that ignores the stop signal is killed
// once the timeout passes; one that survives SIGKILL loses its VM.
func TestStopGraceExpiry(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	c := l.add(t, "stubborn", []string{"stubborn"}, nil)
	if err := l.m.Start(ctx, "stubborn"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := l.m.Stop(ctx, "stubborn", "", 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Fatalf("stop returned after %v, before the grace period", d)
	}
	p, _ := l.vms.last().guest.proc(mainProcess)
	if got := p.signalsReceived(); !slices.Equal(got, []int32{15, 9}) {
		t.Fatalf("signals %v, want SIGTERM then SIGKILL", got)
	}
	if st := c.Snapshot().State; st.ExitCode != 137 || st.Error != "" || st.Status != mobycontainer.StateExited {
		t.Fatalf("after stop: %+v", st)
	}
	if l.vms.last().wasKilled() {
		t.Fatal("VM killed although the process died of SIGKILL")
	}

	im := l.add(t, "immortal", []string{"immortal"}, nil)
	if err := l.m.Start(ctx, "immortal"); err != nil {
		t.Fatal(err)
	}
	if err := l.m.Stop(ctx, "immortal", "", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if !l.vms.last().wasKilled() {
		t.Fatal("VM of a process that survives SIGKILL not killed")
	}
	if st := im.Snapshot().State; st.ExitCode != 137 || st.Error != "" || st.Status != mobycontainer.StateExited {
		t.Fatalf("after stop: %+v", st)
	}
}

// TestStopHonoursContext: a stop whose request is gone returns at once.
func TestStopHonoursContext(t *testing.T) {
	l := newLifecycle(t)
	c := l.add(t, "s", []string{"stubborn"}, nil)
	if err := l.m.Start(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := l.m.Stop(ctx, "s", "", time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop with an expired context: %v", err)
	}
	if err := l.m.Kill(context.Background(), "s", ""); err != nil {
		t.Fatal(err)
	}
	l.waitExit(t, c)
}

// TestVMDiesWhileRunning: the exit is 137 with the VM's reason and its
// console's tail.
func TestVMDiesWhileRunning(t *testing.T) {
	l := newLifecycle(t)
	c := l.add(t, "x", []string{"sleep"}, nil)
	if err := l.m.Start(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	l.vms.last().stop(errors.New("qemu: segmentation fault"))
	st := l.waitExit(t, c)
	if st.ExitCode != 137 || !strings.Contains(st.Error, "the VM stopped: qemu: segmentation fault") || !strings.Contains(st.Error, "fake console line") {
		t.Fatalf("after the VM died: %+v", st)
	}
}

// TestAgentLost: an agent that goes away while its VM stays up ends the
// run with the reason, and the VM, which no longer powers off, is killed.
func TestAgentLost(t *testing.T) {
	l := newLifecycle(t)
	c := l.add(t, "x", []string{"sleep"}, nil)
	if err := l.m.Start(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	vm := l.vms.last()
	vm.guest.dropAgent()
	st := l.waitExit(t, c)
	if st.ExitCode != 137 || !strings.Contains(st.Error, "lost the agent") {
		t.Fatalf("after the agent went away: %+v", st)
	}
	if !vm.wasKilled() {
		t.Fatal("VM left running")
	}
}

// TestStartFailures: a VM that dies while booting, an agent that never
// answers, a missing command and a canceled request each fail the start
// with the reason, leave the container exited with Docker's code and no
// VM running.
func TestStartFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		boot    fakeBoot
		cmd     string
		ctx     time.Duration // request timeout; 0: none
		wantErr string
		class   error
		code    int
	}{
		{"VM dies while booting", bootDies, "echo", 0, "VM stopped while booting: guest kernel panicked", nil, 128},
		{"agent unreachable", bootSilent, "echo", 0, "VM did not come up", errdefs.ErrUnavailable, 128},
		{"request canceled while booting", bootSilent, "echo", 200 * time.Millisecond, "VM did not come up", nil, 128},
		{"missing command", bootOK, "nosuchcmd", 0, `exec: "nosuchcmd": executable file not found in $PATH`, errdefs.ErrInvalidArgument, 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLifecycle(t)
			l.vms.boot = tc.boot
			c := l.add(t, "x", []string{tc.cmd}, nil)
			ctx := context.Background()
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			t0 := time.Now()
			err := l.m.Start(ctx, "x")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || (tc.class != nil && !errors.Is(err, tc.class)) {
				t.Fatalf("start: %v, want %q", err, tc.wantErr)
			}
			if tc.ctx > 0 && time.Since(t0) > tc.ctx+time.Second {
				t.Fatalf("start took %v after its request was gone", time.Since(t0))
			}
			st := c.Snapshot().State
			if st.Status != mobycontainer.StateExited || st.ExitCode != tc.code || !strings.Contains(st.Error, tc.wantErr) || st.Starting {
				t.Fatalf("state %+v", st)
			}
			select {
			case <-l.vms.last().Done():
			default:
				t.Fatal("VM left running after a failed start")
			}
			if got := l.actions(c); !slices.Equal(got, []string{"die"}) {
				t.Fatalf("events %v", got)
			}
			// The container can be started again.
			l.vms.mu.Lock()
			l.vms.boot = bootOK
			l.vms.mu.Unlock()
			c.mu.Lock()
			c.spec.Path = "echo"
			c.mu.Unlock()
			if err := l.m.Start(context.Background(), "x"); err != nil {
				t.Fatal(err)
			}
			if st := l.waitExit(t, c); st.ExitCode != 0 || st.Error != "" {
				t.Fatalf("restart after a failed start: %+v", st)
			}
		})
	}
}

// TestRestartAndAutoRemove: restart boots a new VM; an --rm container is
// removed once its run ends, and Wait(removed) sees it.
func TestRestartAndAutoRemove(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	c := l.add(t, "r", []string{"sleep"}, nil)
	if err := l.m.Start(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	first := l.vms.last()
	if err := l.m.Restart(ctx, "r", time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.Done():
	default:
		t.Fatal("restart left the first VM running")
	}
	if l.vms.launched() != 2 || c.Snapshot().State.Status != mobycontainer.StateRunning {
		t.Fatalf("restart: %d VMs, state %+v", l.vms.launched(), c.Snapshot().State)
	}
	if got := l.actions(c); !slices.Equal(got, []string{"start", "die", "stop", "start", "restart"}) {
		t.Fatalf("events %v", got)
	}
	if err := l.m.Remove(ctx, "r", false); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("remove of a running container: %v", err)
	}
	if err := l.m.Remove(ctx, "r", true); err != nil {
		t.Fatal(err)
	}
	if _, err := l.m.Get("r"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("after forced remove: %v", err)
	}

	rm := l.add(t, "rm", []string{"exit", "0"}, func(s *Spec) { s.HostConfig.AutoRemove = true })
	removed := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := l.m.Wait(wctx, rm.ID(), WaitRemoved)
		removed <- err
	}()
	if err := l.m.Start(ctx, "rm"); err != nil {
		t.Fatal(err)
	}
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rm.dir); !os.IsNotExist(err) {
		t.Fatalf("--rm container's directory left: %v", err)
	}
}

// TestExecHonoursAttachFlags: an exec gets only the streams it was
// created to attach; the others are not even opened in the guest.
func TestExecHonoursAttachFlags(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	c := l.add(t, "x", []string{"sleep"}, nil)
	if err := l.m.Start(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stdout, stderr         bool
		wantStdout, wantStderr string
	}{
		{true, true, "out\n", "err\n"},
		{false, true, "", "err\n"},
		{true, false, "out\n", ""},
		{false, false, "", ""},
	} {
		id, err := l.m.CreateExec(ctx, "x", ExecConfig{Cmd: []string{"both"}, AttachStdout: tc.stdout, AttachStderr: tc.stderr})
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr testenv.SyncBuffer
		code, err := l.m.StartExec(ctx, id, agent.Stdio{Stdin: strings.NewReader("in"), Stdout: &stdout, Stderr: &stderr})
		if err != nil || code != 0 {
			t.Fatalf("exec: %d %v", code, err)
		}
		if stdout.String() != tc.wantStdout || stderr.String() != tc.wantStderr {
			t.Errorf("stdout %v stderr %v: got %q %q", tc.stdout, tc.stderr, stdout.String(), stderr.String())
		}
		req := l.vms.last().guest.created(t, id)
		if (req.StdoutPort != 0) != tc.stdout || (req.StderrPort != 0) != tc.stderr || req.StdinPort != 0 {
			t.Errorf("ports for stdout %v stderr %v: %+v", tc.stdout, tc.stderr, req)
		}
		e, _ := l.m.GetExec(id)
		if st := e.State(); st.Running || st.ExitCode == nil || *st.ExitCode != 0 {
			t.Errorf("exec state %+v", st)
		}
	}
	// A second start of one exec is a conflict; a missing command 127.
	id, _ := l.m.CreateExec(ctx, "x", ExecConfig{Cmd: []string{"nosuchcmd"}, AttachStdout: true})
	if code, err := l.m.StartExec(ctx, id, agent.Stdio{}); code != 127 || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("missing exec command: %d %v", code, err)
	}
	if _, err := l.m.StartExec(ctx, id, agent.Stdio{}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("second start: %v", err)
	}
	// A running exec ends with its container, and is forgotten.
	id, _ = l.m.CreateExec(ctx, "x", ExecConfig{Cmd: []string{"sleep"}})
	e, _ := l.m.GetExec(id)
	e.SetConsoleSize([2]uint{40, 100})
	done := make(chan int, 1)
	go func() {
		code, _ := l.m.StartExec(ctx, id, agent.Stdio{})
		done <- code
	}()
	for !e.State().Running {
		time.Sleep(5 * time.Millisecond)
	}
	if err := l.m.Kill(ctx, "x", ""); err != nil {
		t.Fatal(err)
	}
	l.waitExit(t, c)
	<-done
	if _, err := l.m.GetExec(id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("exec of a stopped container: %v", err)
	}
	if req := l.vms.last().guest.created(t, id); req.Rows != 40 || req.Cols != 100 {
		t.Fatalf("console size %dx%d", req.Rows, req.Cols)
	}
	if _, err := l.m.CreateExec(ctx, "x", ExecConfig{Cmd: []string{"echo"}}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("exec in a stopped container: %v", err)
	}
}

// TestAttachStreams: an attached client gets the streams it asked for
// and gives the process its input; one attached before the start follows
// the run to its end.
func TestAttachStreams(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	c := l.add(t, "x", []string{"tee2"}, func(s *Spec) { s.Config.OpenStdin, s.Config.StdinOnce = true, true })
	var stderr testenv.SyncBuffer
	attached := make(chan error, 1)
	go func() {
		attached <- l.m.Attach(ctx, "x", AttachOptions{Stdin: strings.NewReader("hi\n"), Stderr: &stderr})
	}()
	// Attach subscribes before the start; its input waits for the run.
	time.Sleep(50 * time.Millisecond)
	if err := l.m.Start(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-attached:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not end with the run")
	}
	st := l.waitExit(t, c)
	if st.ExitCode != 0 || stderr.String() != "hi\n" {
		t.Fatalf("exit %d, stderr %q", st.ExitCode, stderr.String())
	}
	// The two streams ride two connections: either may come first.
	if got := l.logs(t, c); got != "stdout:hi\nstderr:hi\n" && got != "stderr:hi\nstdout:hi\n" {
		t.Fatalf("log %q", got)
	}
}

// TestAttachLeavesNothingBehind: an attach whose client left returns,
// and its input copy, blocked on a process that reads nothing, ends too.
func TestAttachLeavesNothingBehind(t *testing.T) {
	p := newInputPipe()
	ctx, cancel := context.WithCancel(context.Background())
	copied := make(chan error, 1)
	go func() { copied <- p.copyFrom(ctx, strings.NewReader("nobody reads this")) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-copied:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("copy: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("input copy still blocked after its client left")
	}
	// What was written is read in order, then EOF once closed.
	go func() {
		_ = p.copyFrom(context.Background(), strings.NewReader("abc"))
		p.Close()
	}()
	b, err := io.ReadAll(p)
	if err != nil || string(b) != "abc" {
		t.Fatalf("read %q %v", b, err)
	}

	l := newLifecycle(t)
	l.add(t, "x", []string{"sleep"}, func(s *Spec) { s.Config.OpenStdin = true })
	actx, acancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer acancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("typed before the start"))
	if err := l.m.Attach(actx, "x", AttachOptions{Stdin: pr}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("attach: %v", err)
	}
}

// TestConcurrentLifecycle drives one container from many goroutines at
// once, for the race detector: inspect, stop, kill, stats, wait and logs
// while the run ends.
func TestConcurrentLifecycle(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	c := l.add(t, "x", []string{"sleep"}, nil)
	for round := 0; round < 3; round++ {
		if err := l.m.Start(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				switch i {
				case 0:
					_ = l.m.Stop(ctx, "x", "", time.Second)
				case 1:
					_ = l.m.Kill(ctx, "x", "")
				case 2:
					for j := 0; j < 20; j++ {
						_ = c.Snapshot()
						_, _ = l.m.Stats(ctx, "x")
						_ = l.m.List(true, nil)
					}
				case 3:
					_, _ = l.m.Wait(ctx, "x", WaitNotRunning)
					_ = l.m.Rename("x", "x")
				}
			}(i)
		}
		wg.Wait()
		if st := l.waitExit(t, c); st.Status != mobycontainer.StateExited || st.Error != "" {
			t.Fatalf("round %d: %+v", round, st)
		}
	}
}

// TestNoGoroutineOutlivesItsRun: once a run is over (and the requests
// that touched it are gone), nothing the container package or the agent
// client started is still running.
func TestNoGoroutineOutlivesItsRun(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	c := l.add(t, "x", []string{"sleep"}, func(s *Spec) { s.Config.OpenStdin = true })
	// A client that types into a container nobody reads yet, then leaves.
	actx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	pr, pw := io.Pipe()
	go pw.Write([]byte("input"))
	_ = l.m.Attach(actx, "x", AttachOptions{Stdin: pr, Stdout: io.Discard})
	pw.Close() // the request's connection closes
	noGoroutinesLeft(t, "after an attach whose client left")
	if err := l.m.Start(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	id, _ := l.m.CreateExec(ctx, "x", ExecConfig{Cmd: []string{"both"}, AttachStdout: true})
	if _, err := l.m.StartExec(ctx, id, agent.Stdio{Stdout: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.m.Stats(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := l.m.Stop(ctx, "x", "", time.Second); err != nil {
		t.Fatal(err)
	}
	l.waitExit(t, c)
	noGoroutinesLeft(t, "after the run")
}

// noGoroutinesLeft fails t if, within a few seconds, goroutines of the
// container package (but the test's own) or of the agent client are
// still running.
func noGoroutinesLeft(t *testing.T, when string) {
	t.Helper()
	var leaked []string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		leaked = leaked[:0]
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "berth/engine/container.") && !strings.Contains(g, "_test.go") ||
				strings.Contains(g, "berth/engine/agent.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
	}
	t.Fatalf("%d goroutines left %s:\n%s", len(leaked), when, strings.Join(leaked, "\n\n"))
}

// TestWaitNextExit: a next-exit wait begun before the start (as docker
// run does) returns the exit code of the run that start begins, also
// when the start fails; a removal ends it.
func TestWaitNextExit(t *testing.T) {
	l := newLifecycle(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		cmd  []string
		boot fakeBoot
		code int
	}{
		{[]string{"exit", "7"}, bootOK, 7},
		{[]string{"exit", "0"}, bootDies, 128},
	} {
		l.vms.mu.Lock()
		l.vms.boot = tc.boot
		l.vms.mu.Unlock()
		c := l.add(t, tc.cmd[0]+tc.cmd[1], tc.cmd, nil)
		got := make(chan int, 1)
		go func() {
			code, err := l.m.Wait(ctx, c.ID(), WaitNextExit)
			if err != nil {
				t.Error(err)
			}
			got <- code
		}()
		time.Sleep(20 * time.Millisecond) // the wait is in before the start
		_ = l.m.Start(ctx, c.ID())
		if code := <-got; code != tc.code {
			t.Fatalf("%v: next-exit returned %d, want %d", tc.cmd, code, tc.code)
		}
	}
	c := l.add(t, "gone", []string{"echo"}, nil)
	got := make(chan error, 1)
	go func() {
		_, err := l.m.Wait(ctx, c.ID(), WaitNextExit)
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := l.m.Remove(ctx, "gone", false); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("next-exit of a removed container: %v", err)
	}
}

// TestSignalExec: SignalExec delivers a signal to a running exec's
// process (not the container's); a bad signal, an exec that is not
// running and a missing one are refused with their classes.
func TestSignalExec(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	c := l.add(t, "x", []string{"sleep"}, nil)
	if err := l.m.Start(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	id, err := l.m.CreateExec(ctx, "x", ExecConfig{Cmd: []string{"sleep"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.m.SignalExec(ctx, id, "SIGHUP"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("signal before start: %v, want a conflict", err)
	}
	done := make(chan int, 1)
	go func() {
		code, _ := l.m.StartExec(ctx, id, agent.Stdio{})
		done <- code
	}()
	e, _ := l.m.GetExec(id)
	for !e.State().Running {
		time.Sleep(5 * time.Millisecond)
	}
	if err := l.m.SignalExec(ctx, id, "SIGBOGUS"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad signal: %v, want invalid argument", err)
	}
	if err := l.m.SignalExec(ctx, id, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 129 {
		t.Errorf("exec ended with %d, want 129 (SIGHUP)", code)
	}
	guest := l.vms.last().guest
	for pid, want := range map[string]int{id: 1, mainProcess: 0} {
		p, err := guest.proc(pid)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.signalsReceived(); len(got) != want || (want == 1 && got[0] != 1) {
			t.Errorf("process %s got signals %v, want %d SIGHUP", pid, got, want)
		}
	}
	if err := l.m.SignalExec(ctx, id, "SIGKILL"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("signal after the exit: %v, want a conflict", err)
	}
	if err := l.m.SignalExec(ctx, "nope", "SIGHUP"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing exec: %v, want not found", err)
	}
	if err := l.m.Kill(ctx, "x", ""); err != nil {
		t.Fatal(err)
	}
	l.waitExit(t, c)
}

// settledTempDir is a temporary directory removed when the test ends,
// retrying for a few seconds: Manager.Close does not wait for the exit
// handlers of VMs still running (they outlive it, as VMs outlive an
// engine), so one may still be saving a container's state file while
// the test's cleanup runs (t.TempDir then fails with "directory not
// empty", seen once in CI under load).
func settledTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-lifecycle-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.RemoveAll(dir)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("remove %s: %v", dir, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return dir
}
