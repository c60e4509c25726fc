package vmm

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
)

// Driver is what a backend provides for one VM: the primitives of its
// hypervisor, and no policy. The VM built on it (NewVM) decides when to
// call them, what a stop means, how long to wait, and why the VM ended.
// It is the shape of Lima's driver interface.
type Driver interface {
	// Start launches the VM (a hypervisor process, a framework VM) with
	// the guest console copied into console, and returns once the
	// hypervisor reports the VM running. It is called once. When it
	// fails, whatever it launched is still ended through HardStop and
	// Exited; when nothing was launched, Exited is closed already.
	Start(ctx context.Context, console io.Writer) error
	// Dialer reaches ports the guest listens on; valid once Start has
	// returned nil.
	Dialer() transport.Dialer
	// RequestStop presses the VM's power button (ACPI, PSCI, the
	// framework's stop request); a guest without a handler ignores it.
	RequestStop(ctx context.Context) error
	// HardStop ends the VM at once, like pulling the plug. It returns
	// once the VM is ending; Exited follows.
	HardStop(ctx context.Context) error
	// Exited is closed once the VM is gone and the driver has released
	// what it held (sockets, pid files).
	Exited() <-chan struct{}
	// Exit is how the VM ended as the hypervisor saw it (its exit status,
	// its shutdown reason, its own error message); valid once Exited is
	// closed. The VM refines it with what the host knows (a hard stop it
	// asked for, a kernel panic on the console).
	Exit() Exit
	// ShareFilesystem is the filesystem type of boot-time shares: "9p"
	// or "virtiofs".
	ShareFilesystem() string
	// GuestShare says how the guest mounts one of Config.Shares
	// (Machine.GuestShare).
	GuestShare(s Share) GuestShare
	// Backend names the backend and the accelerator it runs the VM
	// under (Machine.Backend).
	Backend() string
	// GuestNetwork is the backend's address plan for the guest's NIC
	// (Machine.GuestNetwork).
	GuestNetwork() *GuestNetwork
	// SharePort is the host end of spare port i (Machine.SharePort).
	SharePort(i int) (net.Conn, error)
}

// HandoverDriver is a Driver whose running VM can change owners: a VM
// restored from a template ahead of need (fast start's spare) is handed
// to the container that claims it.
type HandoverDriver interface {
	Driver
	// Handover gives the running VM to the owner described by to, which
	// has the VM's layout (the backend checks): its ID, state directory
	// (the pid file moves there), root disk (it replaces the one the VM
	// runs with; the guest is told its size) and network plan. The guest
	// is not told anything else: the caller completes it (the agent's
	// FinishRestore).
	Handover(ctx context.Context, to Config) error
}

// VM is a Machine built from a backend's Driver: the lifecycle policy
// every backend shares, written once.
//
//   - Start: Driver.Start, then Config.Ping until the agent answers, the
//     VM ends or ctx ends. On failure the VM is stopped hard and the
//     error carries the hypervisor's own message (when it ended by
//     itself) and the tail of the console.
//   - Stop: Config.Shutdown (or Driver.RequestStop without one), up to
//     grace for the VM to end, then a hard stop.
//   - Kill: a hard stop at once.
//   - Wait and the exit reason: the Driver's Exit, refined — a hard stop
//     the host asked for is ExitKilled, a panic line on the console is
//     ExitPanic.
type VM struct {
	cfg     Config
	drv     Driver
	console *ConsoleLog

	mu       sync.Mutex
	started  bool
	launched bool   // Driver.Start was called: the driver owns Exited
	hard     string // the host stopped the VM hard: why
	exit     Exit
	timeline Timeline
	states   States
	done     chan struct{} // closed once the VM is gone and exit is set
}

var _ Machine = (*VM)(nil)

// NewVM returns the Machine for cfg (validated by the backend) driven by
// d; nothing runs until Start.
func NewVM(cfg Config, d Driver) *VM {
	return &VM{cfg: cfg, drv: d, states: NewStates(cfg.OnState), done: make(chan struct{})}
}

// Config is the VM's validated configuration.
func (m *VM) Config() Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// Driver is the backend's driver of this VM.
func (m *VM) Driver() Driver { return m.drv }

// ShareFilesystem is the backend's share filesystem type.
func (m *VM) ShareFilesystem() string { return m.drv.ShareFilesystem() }

// GuestShare says how the guest mounts the share s.
func (m *VM) GuestShare(s Share) GuestShare { return m.drv.GuestShare(s) }

// Backend names the backend and its accelerator.
func (m *VM) Backend() string { return m.drv.Backend() }

// GuestNetwork is the backend's address plan for the guest's NIC.
func (m *VM) GuestNetwork() *GuestNetwork { return m.drv.GuestNetwork() }

// SharePort returns the host end of spare port i (Config.SharePorts).
func (m *VM) SharePort(i int) (net.Conn, error) {
	if i < 0 || i >= m.cfg.SharePorts {
		return nil, fmt.Errorf("share port %d: the VM has %d", i, m.cfg.SharePorts)
	}
	return m.drv.SharePort(i)
}

// State returns the current state.
func (m *VM) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.states.Current()
}

// Timeline returns the boot's host-side timestamps.
func (m *VM) Timeline() Timeline {
	m.mu.Lock()
	t, c := m.timeline, m.console
	m.mu.Unlock()
	if c != nil {
		t.FirstOutput = c.FirstOutput()
	}
	return t
}

// ConsoleTail returns the last n lines of this VM's console output, from
// the tail its console log keeps in memory.
func (m *VM) ConsoleTail(n int) string {
	m.mu.Lock()
	c := m.console
	m.mu.Unlock()
	if c == nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(c.Tail(consoleTail), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Dialer returns the agent transport; nil before Start.
func (m *VM) Dialer() transport.Dialer {
	m.mu.Lock()
	running := m.launched
	m.mu.Unlock()
	if !running {
		return nil
	}
	return m.drv.Dialer()
}

// Start launches the VM and waits until the guest's agent answers
// (Config.Ping), the VM ends, or ctx ends. It opens the console log,
// starts the driver, and pings the agent; on failure it stops the VM hard
// and returns an error with the hypervisor's message and the end of the
// console.
func (m *VM) Start(ctx context.Context) (err error) {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errdefs.Conflict(fmt.Errorf("start vm %s: already started", m.cfg.ID))
	}
	m.started = true
	m.mu.Unlock()

	console, err := NewConsoleLog(m.cfg.ConsoleLog)
	if err != nil {
		m.finish(Exit{Reason: ExitHypervisorError, Detail: err.Error()})
		return fmt.Errorf("start vm %s: %w", m.cfg.ID, err)
	}
	m.mu.Lock()
	m.console = console
	m.launched = true
	m.timeline.Launched = time.Now()
	m.states.Set(StateStarting)
	m.mu.Unlock()
	go m.watch()

	if err := m.drv.Start(ctx, console); err != nil {
		return m.failStart(err)
	}
	m.mu.Lock()
	m.timeline.Running = time.Now()
	m.mu.Unlock()
	if m.cfg.Template {
		err = m.waitConsole(ctx, TemplateReady)
	} else {
		err = PingUntil(ctx, m.drv.Dialer(), m.cfg.Ping, m.done)
	}
	if err != nil {
		return m.failStart(err)
	}
	m.mu.Lock()
	m.timeline.AgentReady = time.Now()
	m.states.Set(StateRunning)
	m.mu.Unlock()
	return nil
}

// waitConsole waits until the console shows line, the VM ends or ctx
// ends.
func (m *VM) waitConsole(ctx context.Context, line string) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if strings.Contains(m.console.Tail(consoleTail), line) {
			return nil
		}
		select {
		case <-m.done:
			return fmt.Errorf("the VM ended before its console showed %q", line)
		case <-ctx.Done():
			return fmt.Errorf("the console did not show %q: %w", line, ctx.Err())
		case <-t.C:
		}
	}
}

// SaveState saves the VM's state to path (Snapshotter) where its
// backend can.
func (m *VM) SaveState(ctx context.Context, path string) error {
	s, ok := m.drv.(Snapshotter)
	if !ok {
		return errdefs.NotImplemented(fmt.Errorf("save vm %s: the %s backend cannot save a VM's state", m.cfg.ID, m.drv.Backend()))
	}
	if st := m.State(); st != StateRunning {
		return errdefs.Conflict(fmt.Errorf("save vm %s: it is %s, not running", m.cfg.ID, st))
	}
	if err := s.SaveState(ctx, path); err != nil {
		return fmt.Errorf("save vm %s: %w", m.cfg.ID, err)
	}
	return nil
}

// Handover gives the running VM to a new owner (HandoverDriver): from
// then on it has to's ID, state directory, root disk, network plan,
// agent hooks and console log (the output so far stays in the old
// one). It fails for a backend that cannot, or a VM that is not
// running; on failure the VM is in an unknown state and should be
// killed.
func (m *VM) Handover(ctx context.Context, to Config) error {
	h, ok := m.drv.(HandoverDriver)
	if !ok {
		return errdefs.NotImplemented(fmt.Errorf("hand vm %s over: the %s backend cannot", m.cfg.ID, m.drv.Backend()))
	}
	if st := m.State(); st != StateRunning {
		return errdefs.Conflict(fmt.Errorf("hand vm %s over: it is %s, not running", m.cfg.ID, st))
	}
	m.mu.Lock()
	from := m.cfg
	c := m.console
	m.mu.Unlock()
	to, err := to.Validate(from.Arch)
	if err != nil {
		return fmt.Errorf("hand vm %s over: %w", from.ID, err)
	}
	if err := c.Retarget(to.ConsoleLog); err != nil {
		return fmt.Errorf("hand vm %s over to %s: %w", from.ID, to.ID, err)
	}
	if err := h.Handover(ctx, to); err != nil {
		return fmt.Errorf("hand vm %s over to %s: %w", from.ID, to.ID, err)
	}
	m.mu.Lock()
	m.cfg = to
	m.mu.Unlock()
	return nil
}

// failStart stops a VM whose start failed and explains why: the
// hypervisor's own words when it ended by itself (QEMU refusing a
// configuration says why on its stderr), and the console's last lines.
func (m *VM) failStart(cause error) error {
	m.mu.Lock()
	m.states.Set(StateStopping)
	m.mu.Unlock()
	m.hardStop(context.Background(), "stopped hard: the start failed")
	msg := cause.Error()
	if raw := m.drv.Exit(); raw.Reason == ExitHypervisorError && raw.Detail != "" && !strings.Contains(raw.Detail, msg) {
		msg = raw.Detail + " (" + msg + ")"
	}
	return fmt.Errorf("start vm %s: %s%s", m.Config().ID, msg, m.consoleTail())
}

func (m *VM) consoleTail() string {
	if m.console == nil {
		return ""
	}
	t := strings.TrimSpace(m.console.Tail(2048))
	if t == "" {
		return " (the console stayed silent)"
	}
	return "\nlast console output:\n" + t
}

// watch waits for the driver to report the VM gone and records how it
// ended.
func (m *VM) watch() {
	<-m.drv.Exited()
	m.finish(m.refine(m.drv.Exit()))
}

// refine turns the driver's view of the end into the Machine's: a hard
// stop the host asked for wins, then a panic line on the console.
func (m *VM) refine(raw Exit) Exit {
	m.mu.Lock()
	hard := m.hard
	m.mu.Unlock()
	if hard != "" {
		return Exit{Reason: ExitKilled, Detail: hard}
	}
	if raw.Reason != ExitKilled && m.console != nil {
		if p := m.console.Panic(); p != "" {
			return Exit{Reason: ExitPanic, Detail: p}
		}
	}
	return raw
}

// finish records the end once, closes the console and releases waiters.
func (m *VM) finish(exit Exit) {
	m.mu.Lock()
	select {
	case <-m.done:
		m.mu.Unlock()
		return
	default:
	}
	exit.At = time.Now()
	m.exit = exit
	m.timeline.Stopped = exit.At
	m.states.Set(StateStopped)
	c := m.console
	m.mu.Unlock()
	if c != nil {
		c.Close()
	}
	close(m.done)
}

// Wait blocks until the VM is gone or ctx ends.
func (m *VM) Wait(ctx context.Context) (Exit, error) {
	select {
	case <-m.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.exit, nil
	case <-ctx.Done():
		return Exit{}, fmt.Errorf("wait for vm %s: %w", m.Config().ID, ctx.Err())
	}
}

// Stop asks the guest to power off — Config.Shutdown, or the driver's
// power button without one — waits up to grace for the VM to end, and
// then stops it hard.
func (m *VM) Stop(ctx context.Context, grace time.Duration) error {
	if !m.beginStop() {
		return m.waitGone(ctx)
	}
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	var askErr error
	if d, cfg := m.drv.Dialer(), m.Config(); cfg.Shutdown != nil && d != nil {
		askErr = cfg.Shutdown(gctx, d)
	} else {
		askErr = m.drv.RequestStop(gctx)
	}
	if askErr == nil {
		select {
		case <-m.done:
			return nil
		case <-gctx.Done():
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stop vm %s: %w", m.Config().ID, ctx.Err())
	}
	detail := fmt.Sprintf("stopped hard: the guest did not power off within %v", grace)
	if askErr != nil {
		detail = fmt.Sprintf("stopped hard: asking the guest to power off failed: %v", askErr)
	}
	return m.hardStop(ctx, detail)
}

// Kill stops the VM hard at once.
func (m *VM) Kill(ctx context.Context) error {
	if !m.beginStop() {
		return m.waitGone(ctx)
	}
	return m.hardStop(ctx, "stopped hard by the host")
}

// beginStop moves to Stopping; false when the VM never launched or is
// gone already.
func (m *VM) beginStop() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.launched || m.states.Current() == StateStopped {
		return false
	}
	m.states.Set(StateStopping)
	return true
}

// waitGone waits for a VM that is ending or gone; one that never started
// is gone already.
func (m *VM) waitGone(ctx context.Context) error {
	if m.State() == StateCreated {
		return nil
	}
	_, err := m.Wait(ctx)
	return err
}

// hardStop records why the host stops the VM hard, asks the driver to,
// and waits until it is gone. A VM that ended by itself keeps the
// driver's account of why.
func (m *VM) hardStop(ctx context.Context, detail string) error {
	m.mu.Lock()
	select {
	case <-m.done:
		m.mu.Unlock()
		return nil
	case <-m.drv.Exited():
		m.mu.Unlock()
		_, err := m.Wait(ctx)
		return err
	default:
	}
	if m.hard == "" {
		m.hard = detail
	}
	m.mu.Unlock()
	if err := m.drv.HardStop(ctx); err != nil {
		select {
		case <-m.done:
			return nil
		default:
		}
		return fmt.Errorf("kill vm %s: %w", m.Config().ID, err)
	}
	if _, err := m.Wait(ctx); err != nil {
		return fmt.Errorf("kill vm %s: %w", m.Config().ID, err)
	}
	return nil
}
