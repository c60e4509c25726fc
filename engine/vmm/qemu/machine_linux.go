//go:build linux

package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
)

// Transport picks how the host reaches the guest's agent.
type Transport string

// The agent transports.
const (
	// TransportAuto uses vhost-vsock when /dev/vhost-vsock opens, and
	// virtio-serial with yamux otherwise.
	TransportAuto Transport = ""
	// TransportVsock: AF_VSOCK through vhost-vsock.
	TransportVsock Transport = "vsock"
	// TransportSerial: one virtio-serial port carrying yamux streams.
	TransportSerial Transport = "serial"
)

// Option adjusts a QEMU Machine beyond the portable vmm.Config.
type Option func(*options)

type options struct {
	accel     Accel
	transport Transport
	binary    string
}

// WithAccel chooses the accelerator (default AccelAuto).
func WithAccel(a Accel) Option { return func(o *options) { o.accel = a } }

// WithTransport chooses the agent transport (default TransportAuto).
func WithTransport(t Transport) Option { return func(o *options) { o.transport = t } }

// WithBinary runs this QEMU program instead of qemu-system-ARCH from PATH.
func WithBinary(path string) Option { return func(o *options) { o.binary = path } }

// Machine is a micro-VM run by a qemu-system process.
type Machine struct {
	cfg  vmm.Config
	opts options

	console *vmm.ConsoleLog
	cmd     *exec.Cmd
	qmp     *qmp
	dialer  transport.Dialer
	closers []io.Closer // host ends of the sockets, closed when QEMU is gone

	mu       sync.Mutex
	timeline vmm.Timeline
	exit     vmm.Exit
	hard     string // set when the host stops the VM hard: the detail
	shutdown string // the reason of QMP's SHUTDOWN event
	started  bool
	stderr   strings.Builder

	states vmm.States
	done   chan struct{} // closed when QEMU is gone and exit is set
}

var _ vmm.Machine = (*Machine)(nil)

// New returns a Machine for cfg; nothing runs until Start.
func New(cfg vmm.Config, opt ...Option) (*Machine, error) {
	cfg, err := cfg.Validate(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	if _, err := binary(cfg.Arch); err != nil {
		return nil, errdefs.InvalidArgument(err)
	}
	m := &Machine{cfg: cfg, done: make(chan struct{})}
	for _, o := range opt {
		o(&m.opts)
	}
	m.states = vmm.NewStates(cfg.OnState)
	return m, nil
}

// ShareFilesystem is "9p": boot-time shares are virtio-9p devices.
func (m *Machine) ShareFilesystem() string { return "9p" }

// State returns the current state.
func (m *Machine) State() vmm.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.states.Current()
}

// Timeline returns the boot's host-side timestamps.
func (m *Machine) Timeline() vmm.Timeline {
	m.mu.Lock()
	t := m.timeline
	m.mu.Unlock()
	if m.console != nil {
		t.FirstOutput = m.console.FirstOutput()
	}
	return t
}

// Dialer returns the agent transport; nil before Start.
func (m *Machine) Dialer() transport.Dialer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dialer
}

// Start launches QEMU and waits until the guest's agent answers.
//
// It claims a vhost-vsock CID (or makes a socketpair for the virtio-serial
// agent port), makes socketpairs for QMP and the console, starts QEMU in
// its own process group with Pdeathsig, writes the pid file, negotiates
// QMP, and then pings the agent until it answers, the VM ends, or ctx
// ends. On failure the VM is killed and the error carries the end of the
// console log.
func (m *Machine) Start(ctx context.Context) (err error) {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errdefs.Conflict(fmt.Errorf("start vm %s: already started", m.cfg.ID))
	}
	m.started = true
	m.mu.Unlock()

	defer func() {
		if err == nil {
			return
		}
		m.mu.Lock()
		launched := m.cmd != nil
		m.mu.Unlock()
		if !launched {
			m.finishUnstarted()
			err = fmt.Errorf("start vm %s: %w", m.cfg.ID, err)
			return
		}
		m.kill(context.Background(), "stopped hard: the start failed")
		err = fmt.Errorf("start vm %s: %w%s", m.cfg.ID, err, m.consoleTail())
	}()
	if err := m.launch(ctx); err != nil {
		return err
	}
	if err := m.handshake(ctx); err != nil {
		return err
	}
	return m.waitAgent(ctx)
}

// finishUnstarted ends a Machine whose QEMU never ran.
func (m *Machine) finishUnstarted() {
	m.mu.Lock()
	m.exit = vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: "qemu did not start", At: time.Now()}
	m.timeline.Stopped = m.exit.At
	m.states.Set(vmm.StateStopped)
	m.mu.Unlock()
	m.closeHostEnds()
	if m.console != nil {
		m.console.Close()
	}
	close(m.done)
}

func (m *Machine) consoleTail() string {
	if m.console == nil {
		return ""
	}
	t := strings.TrimSpace(m.console.Tail(2048))
	if t == "" {
		return " (the console stayed silent)"
	}
	return "\nlast console output:\n" + t
}

// launch starts the QEMU process and the goroutines that watch it.
func (m *Machine) launch(ctx context.Context) error {
	cfg := m.cfg
	accel, _ := resolveAccel(m.opts.accel, cfg.Arch)
	l := launch{accel: accel}
	if cfg.Arch == "amd64" {
		l.bios = findQboot()
	}
	switch m.opts.transport {
	case TransportVsock:
		l.vsock = true
	case TransportAuto:
		l.vsock = VhostVsockAvailable()
	}
	prog := m.opts.binary
	if prog == "" {
		name, _ := binary(cfg.Arch)
		p, err := exec.LookPath(name)
		if err != nil {
			return errdefs.Unavailable(fmt.Errorf("%s not found in PATH (Debian: apt-get install %s): %w", name, qemuPackage(cfg.Arch), err))
		}
		prog = p
	}
	console, err := vmm.NewConsoleLog(cfg.ConsoleLog)
	if err != nil {
		return err
	}
	m.console = console

	// Host and QEMU ends of each channel. The QEMU ends are closed here
	// once QEMU has them.
	var child []*os.File
	defer func() {
		for _, f := range child {
			f.Close()
		}
	}()
	qmpHost, qmpChild, err := socketPair("qmp")
	if err != nil {
		return err
	}
	conHost, conChild, err := socketPair("console")
	if err != nil {
		qmpHost.Close()
		qmpChild.Close()
		return err
	}
	child = append(child, qmpChild, conChild)
	m.closers = append(m.closers, qmpHost, conHost)
	var agentHost net.Conn
	if l.vsock {
		f, cid, err := openVhostVsock()
		if err != nil {
			m.closeHostEnds()
			return err
		}
		child = append(child, f)
		l.cid = cid
	} else {
		var agentChild *os.File
		agentHost, agentChild, err = socketPair("agent")
		if err != nil {
			m.closeHostEnds()
			return err
		}
		child = append(child, agentChild)
		m.closers = append(m.closers, agentHost)
	}

	cmd := exec.Command(prog, commandLine(cfg, l)...)
	cmd.ExtraFiles = child
	cmd.Stdin = nil
	cmd.Stdout = nil
	cmd.Stderr = &lockedWriter{mu: &m.mu, w: &m.stderr}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a ^C meant for the engine does not
		// reach QEMU before the engine has stopped the guest.
		Setpgid: true,
		// Dies with the engine. (Pdeathsig follows the thread that
		// forked; the Go runtime does not end threads of goroutines
		// that are not locked to them, and Sweep covers the rest.)
		Pdeathsig: syscall.SIGKILL,
	}
	launched := time.Now()
	if err := cmd.Start(); err != nil {
		m.closeHostEnds()
		return errdefs.Unavailable(fmt.Errorf("run %s: %w", prog, err))
	}
	m.mu.Lock()
	m.cmd = cmd
	m.timeline.Launched = launched
	m.states.Set(vmm.StateStarting)
	m.mu.Unlock()

	if err := m.writePidFile(); err != nil {
		// The VM runs; without a pid file only Sweep is weaker.
		fmt.Fprintf(cmd.Stderr, "berth: %v\n", err)
	}
	go console.CopyFrom(conHost)
	go m.reap()

	q, err := newQMP(ctx, qmpHost, m.onEvent)
	if err != nil {
		return err
	}
	var d transport.Dialer
	if l.vsock {
		d = transport.VsockDialer{CID: l.cid}
	} else {
		md, err := transport.NewMuxDialer(agentHost)
		if err != nil {
			return err
		}
		d = md
	}
	m.mu.Lock()
	m.qmp = q
	m.dialer = d
	m.mu.Unlock()
	return nil
}

// control returns the QMP client, or nil before it is connected.
func (m *Machine) control() *qmp {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.qmp
}

func qemuPackage(arch string) string {
	if arch == "arm64" {
		return "qemu-system-arm"
	}
	return "qemu-system-x86"
}

func (m *Machine) writePidFile() error {
	self, err := procStart(os.Getpid())
	if err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	start, err := procStart(m.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return writePidFile(filepath.Join(m.cfg.StateDir, PidFileName), pidFile{
		ID: m.cfg.ID, PID: m.cmd.Process.Pid, Start: start, EnginePID: os.Getpid(), EngineStart: self,
	})
}

// handshake waits for QEMU to report the VM running.
func (m *Machine) handshake(ctx context.Context) error {
	st, err := m.control().status(ctx)
	if err != nil {
		return err
	}
	if st != "running" {
		return fmt.Errorf("qemu reports the VM %q, not running", st)
	}
	m.mu.Lock()
	m.timeline.Running = time.Now()
	m.mu.Unlock()
	return nil
}

// waitAgent pings the agent until it answers, the VM ends or ctx ends.
func (m *Machine) waitAgent(ctx context.Context) error {
	if err := vmm.PingUntil(ctx, m.Dialer(), m.cfg.Ping, m.done); err != nil {
		select {
		case <-m.done:
			m.mu.Lock()
			exit := m.exit
			m.mu.Unlock()
			return fmt.Errorf("%w (the VM ended: %s)", err, exit)
		default:
		}
		return err
	}
	m.mu.Lock()
	m.timeline.AgentReady = time.Now()
	m.states.Set(vmm.StateRunning)
	m.mu.Unlock()
	return nil
}

// onEvent records QMP events that explain how the VM ends.
func (m *Machine) onEvent(ev qmpEvent) {
	switch ev.Event {
	case "SHUTDOWN":
		var d struct {
			Reason string `json:"reason"`
		}
		json.Unmarshal(ev.Data, &d)
		m.mu.Lock()
		if m.shutdown == "" {
			m.shutdown = d.Reason
		}
		m.mu.Unlock()
	case "GUEST_PANICKED":
		m.mu.Lock()
		m.shutdown = "guest-panic"
		m.mu.Unlock()
	}
}

// reap waits for QEMU to exit, works out why it ended, and releases
// everything.
func (m *Machine) reap() {
	err := m.cmd.Wait()
	now := time.Now()
	m.closeHostEnds()
	os.Remove(filepath.Join(m.cfg.StateDir, PidFileName))
	m.mu.Lock()
	m.exit = m.exitReason(err)
	m.exit.At = now
	m.timeline.Stopped = now
	m.states.Set(vmm.StateStopped)
	m.mu.Unlock()
	m.console.Close()
	close(m.done)
}

// exitReason classifies QEMU's end. Call with m.mu held.
func (m *Machine) exitReason(waitErr error) vmm.Exit {
	if m.hard != "" {
		return vmm.Exit{Reason: vmm.ExitKilled, Detail: m.hard}
	}
	switch m.shutdown {
	case "guest-shutdown":
		return vmm.Exit{Reason: vmm.ExitPowerOff, Detail: "the guest powered off"}
	case "guest-panic":
		return vmm.Exit{Reason: vmm.ExitPanic, Detail: orDefault(m.console.Panic(), "QEMU reported a guest panic")}
	case "guest-reset":
		if p := m.console.Panic(); p != "" {
			return vmm.Exit{Reason: vmm.ExitPanic, Detail: p}
		}
		return vmm.Exit{Reason: vmm.ExitReboot, Detail: "the guest rebooted"}
	case "host-signal":
		return vmm.Exit{Reason: vmm.ExitKilled, Detail: "qemu got a termination signal from outside Berth"}
	}
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return vmm.Exit{Reason: vmm.ExitKilled, Detail: fmt.Sprintf("qemu (pid %d) was killed by signal %v from outside Berth", m.cmd.Process.Pid, ws.Signal())}
		}
	}
	detail := "qemu exited"
	if waitErr != nil {
		detail = "qemu: " + waitErr.Error()
	}
	if s := strings.TrimSpace(m.stderr.String()); s != "" {
		detail += ": " + lastLines(s, 5)
	} else if m.shutdown != "" {
		detail += " (shutdown reason " + m.shutdown + ")"
	}
	return vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: detail}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

func (m *Machine) closeHostEnds() {
	m.mu.Lock()
	cs := m.closers
	m.closers = nil
	m.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
	if d, ok := m.Dialer().(io.Closer); ok {
		d.Close()
	}
}

// Wait blocks until QEMU is gone or ctx ends.
func (m *Machine) Wait(ctx context.Context) (vmm.Exit, error) {
	select {
	case <-m.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.exit, nil
	case <-ctx.Done():
		return vmm.Exit{}, fmt.Errorf("wait for vm %s: %w", m.cfg.ID, ctx.Err())
	}
}

// Stop asks the guest to power off — Config.Shutdown, or the ACPI power
// button (PSCI on arm64) through QMP system_powerdown without one — waits
// up to grace for QEMU to exit, and then stops it hard with Kill.
func (m *Machine) Stop(ctx context.Context, grace time.Duration) error {
	if !m.beginStop() {
		return m.waitGone(ctx)
	}
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	var askErr error
	if m.cfg.Shutdown != nil && m.Dialer() != nil {
		askErr = m.cfg.Shutdown(gctx, m.Dialer())
	} else if q := m.control(); q != nil {
		_, askErr = q.execute(gctx, "system_powerdown", nil)
	}
	if askErr == nil {
		select {
		case <-m.done:
			return nil
		case <-gctx.Done():
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stop vm %s: %w", m.cfg.ID, ctx.Err())
	}
	detail := fmt.Sprintf("stopped hard: the guest did not power off within %v", grace)
	if askErr != nil {
		detail = fmt.Sprintf("stopped hard: asking the guest to power off failed: %v", askErr)
	}
	return m.kill(ctx, detail)
}

// waitGone waits for a VM that is ending or gone; one that never started
// is gone already.
func (m *Machine) waitGone(ctx context.Context) error {
	if m.State() == vmm.StateCreated {
		return nil
	}
	_, err := m.Wait(ctx)
	return err
}

// beginStop moves to Stopping; false when the VM is already gone.
func (m *Machine) beginStop() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.states.Current() == vmm.StateStopped {
		return false
	}
	m.states.Set(vmm.StateStopping)
	return true
}

// Kill stops the VM at once: QMP quit, then SIGKILL to QEMU's process
// group if it has not exited within a second.
func (m *Machine) Kill(ctx context.Context) error {
	if !m.beginStop() {
		return m.waitGone(ctx)
	}
	return m.kill(ctx, "stopped hard by the host")
}

func (m *Machine) kill(ctx context.Context, detail string) error {
	m.mu.Lock()
	select {
	case <-m.done:
		m.mu.Unlock()
		return nil
	default:
	}
	if m.hard == "" {
		m.hard = detail
	}
	m.mu.Unlock()
	if q := m.control(); q != nil {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		q.execute(qctx, "quit", nil)
		cancel()
	}
	select {
	case <-m.done:
		return nil
	case <-time.After(time.Second):
	}
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	if _, err := m.Wait(ctx); err != nil {
		return fmt.Errorf("kill vm %s: %w", m.cfg.ID, err)
	}
	return nil
}

// socketPair returns two connected unix stream sockets: the host's end as
// a net.Conn and QEMU's as a file to inherit.
func socketPair(name string) (net.Conn, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair for %s: %w", name, err)
	}
	hf := os.NewFile(uintptr(fds[0]), name+"-host")
	defer hf.Close()
	c, err := net.FileConn(hf)
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair for %s: %w", name, err)
	}
	return c, os.NewFile(uintptr(fds[1]), name+"-qemu"), nil
}

// lockedWriter collects QEMU's stderr under the Machine's lock.
type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() < 64<<10 {
		l.w.Write(b)
	}
	return len(b), nil
}
