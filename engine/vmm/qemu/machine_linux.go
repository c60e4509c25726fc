//go:build linux

package qemu

import (
	"runtime"

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

// Machine is a micro-VM run by a qemu-system process: the lifecycle of
// vmm.VM over this package's driver.
type Machine struct {
	*vmm.VM
	d *driver
}

var _ vmm.Machine = (*Machine)(nil)

// New returns a Machine for cfg; nothing runs until Start. The
// accelerator is decided here (Accel reports it).
func New(cfg vmm.Config, opt ...Option) (*Machine, error) {
	cfg, err := cfg.Validate(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	if _, err := binary(cfg.Arch); err != nil {
		return nil, errdefs.InvalidArgument(err)
	}
	var o options
	for _, f := range opt {
		f(&o)
	}
	d := newDriver(cfg, o)
	return &Machine{VM: vmm.NewVM(cfg, d), d: d}, nil
}

// Pid is the QEMU process's pid once Start has launched it, else 0.
func (m *Machine) Pid() int { return m.d.pid() }

// Accel is the accelerator the VM runs (or will run) under.
func (m *Machine) Accel() Accel { return m.d.accel }
