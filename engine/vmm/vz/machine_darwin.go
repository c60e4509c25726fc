package vz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/Code-Hex/vz/v3"

	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
)

// Machine is a micro-VM run by Virtualization.framework.
type Machine struct {
	cfg vmm.Config

	console   *vmm.ConsoleLog
	consoleIn *os.File // the guest's console input; never written
	consoleW  *os.File // the framework writes the guest's output here
	vm        *vz.VirtualMachine
	dialer    *vsockDialer

	mu       sync.Mutex
	timeline vmm.Timeline
	exit     vmm.Exit
	hard     string
	started  bool
	states   vmm.States
	done     chan struct{}
}

var _ vmm.Machine = (*Machine)(nil)

// New returns a Machine for cfg; nothing runs until Start. The guest
// architecture must be the host's: the framework does not emulate CPUs.
func New(cfg vmm.Config) (*Machine, error) {
	cfg, err := cfg.Validate(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	if cfg.Arch != runtime.GOARCH {
		return nil, errdefs.InvalidArgument(fmt.Errorf("vm config: Virtualization.framework runs %s guests only, not %s", runtime.GOARCH, cfg.Arch))
	}
	m := &Machine{cfg: cfg, done: make(chan struct{})}
	m.states = vmm.NewStates(cfg.OnState)
	return m, nil
}

// ShareFilesystem is "virtiofs": boot-time shares are virtio-fs devices.
func (m *Machine) ShareFilesystem() string { return "virtiofs" }

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

// Dialer returns the vsock transport; nil before Start.
func (m *Machine) Dialer() transport.Dialer {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dialer == nil {
		return nil
	}
	return m.dialer
}

// Start builds the framework's configuration, starts the VM, and waits
// until the agent answers on vsock, the VM stops, or ctx ends.
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
		if m.vm == nil {
			m.finish(vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: err.Error()})
		} else {
			m.kill(context.Background(), "stopped hard: the start failed")
		}
		err = fmt.Errorf("start vm %s: %w%s", m.cfg.ID, err, m.consoleTail())
	}()

	if m.console, err = vmm.NewConsoleLog(m.cfg.ConsoleLog); err != nil {
		return err
	}
	var consoleR *os.File
	if consoleR, m.consoleW, err = os.Pipe(); err != nil {
		return fmt.Errorf("console pipe: %w", err)
	}
	go m.console.CopyFrom(consoleR)
	var inW *os.File
	if m.consoleIn, inW, err = os.Pipe(); err != nil {
		return fmt.Errorf("console pipe: %w", err)
	}
	// Keep the write end open for the VM's life, so the guest's console
	// input never reads EOF; it is never written.
	go func() { <-m.done; inW.Close() }()

	vc, err := buildConfig(m.cfg, m.consoleIn, m.consoleW)
	if err != nil {
		return err
	}
	vm, err := vz.NewVirtualMachine(vc)
	if err != nil {
		return fmt.Errorf("create vm: %w", err)
	}
	m.vm = vm
	go m.watch(vm.StateChangedNotify())

	m.mu.Lock()
	m.timeline.Launched = time.Now()
	m.states.Set(vmm.StateStarting)
	m.mu.Unlock()
	if err := vm.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	socks := vm.SocketDevices()
	if len(socks) == 0 {
		return errors.New("the VM has no vsock device")
	}
	m.mu.Lock()
	m.dialer = &vsockDialer{dev: socks[0]}
	m.mu.Unlock()

	// While the guest boots, bound each dial: vz documents that a connect
	// to a port nothing listens on "does nothing", and an attempt that
	// never completes must not hold up the next one.
	if err := vmm.PingUntil(ctx, bootDialer{m.dialer}, m.cfg.Ping, m.done); err != nil {
		return err
	}
	m.mu.Lock()
	m.timeline.AgentReady = time.Now()
	m.states.Set(vmm.StateRunning)
	m.mu.Unlock()
	return nil
}

// watch follows the framework's state changes until the VM is stopped or
// failed.
func (m *Machine) watch(states <-chan vz.VirtualMachineState) {
	for st := range states {
		switch st {
		case vz.VirtualMachineStateRunning:
			m.mu.Lock()
			if m.timeline.Running.IsZero() {
				m.timeline.Running = time.Now()
			}
			m.mu.Unlock()
		case vz.VirtualMachineStateStopped:
			m.finish(m.exitReason(vmm.Exit{Reason: vmm.ExitPowerOff, Detail: "the guest stopped"}))
			return
		case vz.VirtualMachineStateError:
			m.finish(m.exitReason(vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: "Virtualization.framework reported an error"}))
			return
		}
	}
}

// exitReason refines what the framework said with what the host knows.
func (m *Machine) exitReason(def vmm.Exit) vmm.Exit {
	m.mu.Lock()
	hard := m.hard
	m.mu.Unlock()
	if hard != "" {
		return vmm.Exit{Reason: vmm.ExitKilled, Detail: hard}
	}
	if p := m.console.Panic(); p != "" {
		return vmm.Exit{Reason: vmm.ExitPanic, Detail: p}
	}
	return def
}

// finish records the end once and releases the console.
func (m *Machine) finish(exit vmm.Exit) {
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
	m.states.Set(vmm.StateStopped)
	m.mu.Unlock()
	close(m.done)
	if m.consoleW != nil {
		m.consoleW.Close()
	}
	if m.consoleIn != nil {
		m.consoleIn.Close()
	}
	if m.console != nil {
		m.console.Close()
	}
}

func (m *Machine) consoleTail() string {
	if m.console == nil {
		return ""
	}
	if t := strings.TrimSpace(m.console.Tail(2048)); t != "" {
		return "\nlast console output:\n" + t
	}
	return " (the console stayed silent)"
}

// Wait blocks until the VM is gone or ctx ends.
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

// Stop asks the guest to power off (Config.Shutdown, or the framework's
// RequestStop), waits up to grace, then stops the VM hard.
func (m *Machine) Stop(ctx context.Context, grace time.Duration) error {
	if !m.beginStop() {
		return m.waitGone(ctx)
	}
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	var askErr error
	if m.cfg.Shutdown != nil && m.Dialer() != nil {
		askErr = m.cfg.Shutdown(gctx, m.Dialer())
	} else if _, err := m.vm.RequestStop(); err != nil {
		askErr = err
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

// Kill stops the VM at once.
func (m *Machine) Kill(ctx context.Context) error {
	if !m.beginStop() {
		return m.waitGone(ctx)
	}
	return m.kill(ctx, "stopped hard by the host")
}

func (m *Machine) beginStop() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.vm == nil || m.states.Current() == vmm.StateStopped {
		return false
	}
	m.states.Set(vmm.StateStopping)
	return true
}

func (m *Machine) waitGone(ctx context.Context) error {
	if m.State() == vmm.StateCreated {
		return nil
	}
	_, err := m.Wait(ctx)
	return err
}

func (m *Machine) kill(ctx context.Context, detail string) error {
	m.mu.Lock()
	if m.hard == "" {
		m.hard = detail
	}
	m.mu.Unlock()
	if err := m.vm.Stop(); err != nil {
		select {
		case <-m.done:
			return nil
		default:
		}
		return fmt.Errorf("kill vm %s: %w", m.cfg.ID, err)
	}
	_, err := m.Wait(ctx)
	return err
}

// vsockDialer connects to the guest's vsock ports through the
// framework's socket device.
type vsockDialer struct {
	dev *vz.VirtioSocketDevice
}

// DialPort connects to port in the guest. The framework's connect has no
// cancellation: when ctx ends first, the connection that may still come
// is closed on arrival.
func (d *vsockDialer) DialPort(ctx context.Context, port uint32) (net.Conn, error) {
	type result struct {
		c   *vz.VirtioSocketConnection
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := d.dev.Connect(port)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("dial vsock port %d: %w", port, r.err)
		}
		return r.c, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, fmt.Errorf("dial vsock port %d: %w", port, ctx.Err())
	}
}

// bootDialer limits each dial to a second while the guest boots.
type bootDialer struct{ d transport.Dialer }

func (b bootDialer) DialPort(ctx context.Context, port uint32) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return b.d.DialPort(dctx, port)
}
