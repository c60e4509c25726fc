//go:build darwin && cgo && !no_vz

package vz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/Code-Hex/vz/v3"

	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
)

// Machine is a micro-VM run by Virtualization.framework: the lifecycle
// of vmm.VM over this package's driver.
type Machine struct {
	*vmm.VM
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
	return &Machine{VM: vmm.NewVM(cfg, &driver{cfg: cfg, Ending: vmm.NewEnding()})}, nil
}

// driver is the vmm.Driver of one Virtualization.framework VM.
type driver struct {
	cfg vmm.Config

	mu        sync.Mutex
	vm        *vz.VirtualMachine
	dialer    *vsockDialer
	consoleIn *os.File // the guest's console input; never written
	consoleW  *os.File // the framework writes the guest's output here
	inW       *os.File // kept open so the guest's console input never reads EOF
	// shareHost and shareVM are the two ends of the spare share ports'
	// socket pairs: the engine's (SharePort) and the framework's.
	shareHost []net.Conn
	shareVM   []*os.File

	*vmm.Ending // Exited and Exit
}

var _ vmm.Driver = (*driver)(nil)

// ShareFilesystem is "virtiofs": boot-time shares are virtio-fs devices.
func (d *driver) ShareFilesystem() string { return "virtiofs" }

// GuestShare: every share is a directory, named by its tag, of the one
// virtio-fs device tagged vmm.VirtioFSSharesTag (addShares).
func (d *driver) GuestShare(s vmm.Share) vmm.GuestShare {
	return vmm.GuestShare{Fstype: "virtiofs", Source: vmm.VirtioFSSharesTag, Subdir: s.Tag}
}

// Backend is "vz": the framework has one accelerator.
func (d *driver) Backend() string { return Name }

// GuestNetwork says DHCP when the VM has a NIC: under the framework's
// NAT (vmnet's shared mode) macOS picks the guest's address, which the
// guest learns by DHCP (the agent's AcquireLease); nil without a NIC.
func (d *driver) GuestNetwork() *vmm.GuestNetwork {
	if d.cfg.Network == nil {
		return nil
	}
	return &vmm.GuestNetwork{DHCP: true}
}

// Dialer returns the vsock transport; nil before Start.
func (d *driver) Dialer() transport.Dialer {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dialer == nil {
		return nil
	}
	return d.dialer
}

// Start builds the framework's configuration, creates and starts the VM,
// and returns once the framework accepted the start.
func (d *driver) Start(ctx context.Context, console io.Writer) error {
	if err := d.openConsole(console); err != nil {
		d.finish(vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: err.Error()})
		return err
	}
	if err := d.openSharePorts(); err != nil {
		d.finish(vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: err.Error()})
		return err
	}
	vc, err := buildConfig(d.cfg, d.consoleIn, d.consoleW, d.shareVM)
	if err != nil {
		d.finish(vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: err.Error()})
		return err
	}
	vm, err := vz.NewVirtualMachine(vc)
	if err != nil {
		err = fmt.Errorf("create vm: %w", err)
		d.finish(vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: err.Error()})
		return err
	}
	d.mu.Lock()
	d.vm = vm
	d.mu.Unlock()
	go d.watch(vm.StateChangedNotify())
	if err := vm.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	socks := vm.SocketDevices()
	if len(socks) == 0 {
		return errors.New("the VM has no vsock device")
	}
	d.mu.Lock()
	d.dialer = &vsockDialer{dev: socks[0]}
	d.mu.Unlock()
	return nil
}

// openConsole makes the pipes of the guest console: output copied into
// console, input never written.
func (d *driver) openConsole(console io.Writer) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("console pipe: %w", err)
	}
	d.consoleW = w
	go vmm.CopyConsole(console, r)
	if d.consoleIn, d.inW, err = os.Pipe(); err != nil {
		return fmt.Errorf("console pipe: %w", err)
	}
	return nil
}

// openSharePorts makes a socket pair per spare share port
// (Config.SharePorts); on macOS before 13, which has no named console
// ports, none, and run-time shares go over vsock.
func (d *driver) openSharePorts() error {
	if d.cfg.SharePorts == 0 {
		return nil
	}
	if _, err := vz.NewVirtioConsoleDeviceConfiguration(); errors.Is(err, vz.ErrUnsupportedOSVersion) {
		return nil
	}
	for i := range d.cfg.SharePorts {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			return fmt.Errorf("share port %d: socketpair: %w", i, err)
		}
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
		hf := os.NewFile(uintptr(fds[0]), "share-host")
		c, err := net.FileConn(hf)
		hf.Close()
		if err != nil {
			syscall.Close(fds[1])
			return fmt.Errorf("share port %d: %w", i, err)
		}
		d.mu.Lock()
		d.shareHost = append(d.shareHost, c)
		d.shareVM = append(d.shareVM, os.NewFile(uintptr(fds[1]), "share-vm"))
		d.mu.Unlock()
	}
	return nil
}

// SharePort is the engine's end of spare share port i.
func (d *driver) SharePort(i int) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i < 0 || i >= len(d.shareHost) {
		return nil, fmt.Errorf("share port %d: the VM has %d (named console ports need macOS 13)", i, len(d.shareHost))
	}
	return d.shareHost[i], nil
}

// watch follows the framework's state changes until the VM is stopped or
// failed.
func (d *driver) watch(states <-chan vz.VirtualMachineState) {
	for st := range states {
		switch st {
		case vz.VirtualMachineStateStopped:
			d.finish(vmm.Exit{Reason: vmm.ExitPowerOff, Detail: "the guest stopped"})
			return
		case vz.VirtualMachineStateError:
			d.finish(vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: "Virtualization.framework reported an error"})
			return
		}
	}
}

// finish records the end once and releases the console pipes.
func (d *driver) finish(exit vmm.Exit) {
	exit.At = time.Now()
	d.Finish(exit, func() {
		for _, f := range append([]*os.File{d.consoleW, d.consoleIn, d.inW}, d.shareVM...) {
			if f != nil {
				f.Close()
			}
		}
		for _, c := range d.shareHost {
			c.Close()
		}
	})
}

// RequestStop asks the guest to stop (the framework's power button).
func (d *driver) RequestStop(ctx context.Context) error {
	d.mu.Lock()
	vm := d.vm
	d.mu.Unlock()
	if vm == nil {
		return errors.New("the VM was never created")
	}
	_, err := vm.RequestStop()
	return err
}

// HardStop stops the VM at once.
func (d *driver) HardStop(ctx context.Context) error {
	d.mu.Lock()
	vm := d.vm
	d.mu.Unlock()
	if vm == nil {
		return nil
	}
	if err := vm.Stop(); err != nil {
		select {
		case <-d.Exited():
			return nil
		default:
		}
		// A VM that never ran (its start failed) reports no state
		// change to wait for: it is gone already.
		if st := vm.State(); st == vz.VirtualMachineStateStopped || st == vz.VirtualMachineStateError {
			d.finish(vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: "the VM did not run: " + err.Error()})
			return nil
		}
		return err
	}
	return nil
}

// vsockDialer connects to the guest's vsock ports through the
// framework's socket device.
type vsockDialer struct {
	dev *vz.VirtioSocketDevice
}

// connectTimeout bounds one connect: the framework documents that a
// connect to a port nothing listens on (the agent while the guest boots)
// "does nothing", and an attempt that never completes must not hold up
// the next one.
const connectTimeout = time.Second

// DialPort connects to port in the guest. The framework's connect has no
// cancellation: when ctx or connectTimeout ends first, the connection
// that may still come is closed on arrival.
func (d *vsockDialer) DialPort(ctx context.Context, port uint32) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
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
