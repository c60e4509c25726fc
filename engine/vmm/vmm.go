// Package vmm defines the micro-VM a container runs in: a Machine, the
// Config it is built from, its states and the reasons it exits. The
// backends live in subpackages — engine/vmm/qemu (Linux: qemu-system with
// KVM or TCG) and engine/vmm/vz (macOS: Virtualization.framework) — and
// engine/vmm/backend picks the one for the running OS. The engine never
// sees which backend it has.
//
// # Primitives and policy
//
// A backend provides only the primitives of its hypervisor, as a Driver:
// start the VM (a process, a framework VM) with its console, a Dialer to
// the guest, press the power button, stop hard, report that the VM is
// gone and how the hypervisor saw the end. Everything else is policy and
// lives once, in VM (NewVM), for every backend: the states and their
// order, waiting for the agent at boot, a graceful stop through the
// guest (Config.Shutdown) or the power button, the grace period and the
// hard stop after it, Wait, the exit reason (a hard stop the host asked
// for, a panic line on the console), the boot timeline, and the error of
// a failed start (the hypervisor's own message and the console's tail).
// A new backend (or a new way to run one) writes a Driver and gets the
// rest.
//
// A Machine boots a Linux kernel directly (no firmware, no bootloader)
// with an initramfs whose /init is guestinit. The guest's first virtio-blk
// disk (/dev/vda) is the container's root disk. The host reaches the
// guest's agent through Dialer: connections by port, over virtio-vsock
// where the hypervisor has it and over one multiplexed virtio-serial port
// where it does not (engine/agent/transport).
package vmm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"time"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
)

// RootParam is the kernel command line parameter every backend passes to
// tell guestinit where the root disk (Config.Root) is. Backends also pass
// berth.transport=vsock or berth.transport=serial for the agent channel
// they give the guest.
const RootParam = "berth.root=/dev/vda"

// TemplateParam is the kernel command line parameter backends pass to a
// VM booted as a template (Config.Template): guestinit serves its agent
// before mounting the root disk, loads its late modules, prints
// TemplateReady on the console and waits, untouched by the host, to be
// saved. A guest restored from it is completed by the agent's
// FinishRestore.
const TemplateParam = agentpb.TemplateParam

// TemplateReady is the console line of a template guest that may be
// saved: its agent serves and nothing at boot is still under way. The
// host must not talk to a template's agent (the saved yamux session
// would carry its streams into every restore).
const TemplateReady = agentpb.TemplateReady

// Machine is one micro-VM.
type Machine interface {
	// Start launches the VM and waits until the guest's agent answers
	// (Config.Ping), the VM dies, or ctx ends; on failure the VM is torn
	// down and the error includes the tail of the console log. A Machine
	// starts once.
	Start(ctx context.Context) error
	// Dialer opens connections to ports the guest listens on. It is valid
	// once Start has returned without error.
	Dialer() transport.Dialer
	// Stop shuts the VM down: it asks the guest to power off
	// (Config.Shutdown, or the hypervisor's power button when there is no
	// hook), waits up to grace for it, then stops the VM hard. It returns
	// once the VM is gone; stopping a VM that is gone already is not an
	// error.
	Stop(ctx context.Context, grace time.Duration) error
	// Kill stops the VM hard at once (pulling the plug) and returns once
	// it is gone.
	Kill(ctx context.Context) error
	// Wait blocks until the VM is gone (or ctx ends) and says why it
	// ended.
	Wait(ctx context.Context) (Exit, error)
	// State is the current state.
	State() State
	// Timeline holds the host-side timestamps of the boot.
	Timeline() Timeline
	// ConsoleTail returns the last n lines of the guest's console, for
	// error messages.
	ConsoleTail(n int) string
	// ShareFilesystem is the filesystem type the guest mounts boot-time
	// shares (Config.Shares) with: "9p" (virtio-9p, QEMU) or "virtiofs"
	// (Virtualization.framework).
	ShareFilesystem() string
	// GuestShare says how the guest mounts the share s (one of
	// Config.Shares).
	GuestShare(s Share) GuestShare
	// Backend names the backend and the accelerator the VM runs under:
	// "qemu (kvm)", "qemu (tcg)", "vz".
	Backend() string
	// GuestNetwork is the address plan the guest configures on its NIC
	// under this backend; nil when the VM has no NIC or the backend's
	// network hands out addresses itself.
	GuestNetwork() *GuestNetwork
	// SharePort returns the host end of spare byte pipe i (0 <= i <
	// Config.SharePorts): the virtio-serial (virtio console) port the
	// guest sees as SharePortName(i). It is valid once Start has returned
	// without error; every call returns the same connection. Closing it
	// disconnects the port for the rest of the VM's life.
	SharePort(i int) (net.Conn, error)
}

// GuestNetwork is a backend's address plan for the guest's NIC: the
// static configuration the guest applies (through its agent) before the
// container runs.
type GuestNetwork struct {
	// Address is the guest's address and prefix (10.0.2.15/24).
	Address netip.Prefix
	// Gateway is the default route's next hop.
	Gateway netip.Addr
	// MTU is the NIC's MTU; 0: the kernel's default.
	MTU int
	// DNS are the resolvers the guest uses.
	DNS []netip.Addr
	// DHCP: the guest asks the network's DHCP server for its address
	// (vz's NAT, where macOS's vmnet picks it); the fields above are then
	// empty until the lease says them.
	DHCP bool
}

// State is where a Machine is in its life.
type State int

// The states of a Machine, in the order it passes through them.
const (
	// StateCreated: configured, not started.
	StateCreated State = iota
	// StateStarting: the hypervisor runs the VM; the agent has not
	// answered yet.
	StateStarting
	// StateRunning: the agent answered.
	StateRunning
	// StateStopping: Stop or Kill is under way.
	StateStopping
	// StateStopped: the VM is gone; Wait says why.
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateCreated:
		return "created"
	case StateStarting:
		return "starting"
	case StateRunning:
		return "running"
	case StateStopping:
		return "stopping"
	case StateStopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ExitReason says why a VM ended.
type ExitReason string

// The reasons a VM ends.
const (
	// ExitPowerOff: the guest powered off (guestinit's shutdown).
	ExitPowerOff ExitReason = "poweroff"
	// ExitReboot: the guest asked to reboot; a Berth VM does not reboot,
	// it ends.
	ExitReboot ExitReason = "reboot"
	// ExitPanic: the guest kernel panicked.
	ExitPanic ExitReason = "panic"
	// ExitKilled: the host stopped the VM hard (Kill, Stop's grace ran
	// out) or the hypervisor process was killed from outside.
	ExitKilled ExitReason = "killed"
	// ExitHypervisorError: the hypervisor failed (it could not start the
	// VM, crashed, or reported an error).
	ExitHypervisorError ExitReason = "hypervisor-error"
)

// Exit is how a VM ended.
type Exit struct {
	// Reason is the class of the ending.
	Reason ExitReason
	// Detail says more in words: the hypervisor's exit status, the QMP
	// shutdown reason, the panic line from the console.
	Detail string
	// At is when the host saw the VM end.
	At time.Time
}

func (e Exit) String() string {
	if e.Detail == "" {
		return string(e.Reason)
	}
	return string(e.Reason) + ": " + e.Detail
}

// Timeline holds host-side timestamps of a boot; zero when the step has
// not happened. The guest's own view (kernel start to init, module
// loading, agent serving) comes from the agent's Info call.
type Timeline struct {
	// Launched: the hypervisor process (QEMU) was started, or vz was asked
	// to start the VM.
	Launched time.Time
	// Running: the hypervisor reported the VM running (QMP query-status
	// "running", vz's running state): firmware-free direct kernel entry
	// follows.
	Running time.Time
	// FirstOutput: the first byte arrived on the console. The kernel is
	// booted with "quiet", so under QEMU this is guestinit's first log
	// line: the host's view of "init started".
	FirstOutput time.Time
	// AgentReady: Config.Ping first succeeded.
	AgentReady time.Time
	// Stopped: the VM was seen gone.
	Stopped time.Time
}

// Disk is a block device given to the guest as virtio-blk.
type Disk struct {
	// Path is a raw disk image file on the host.
	Path string
	// ReadOnly attaches the disk read-only.
	ReadOnly bool
}

// Share is a host directory given to the guest at boot (virtio-9p under
// QEMU, virtio-fs on Virtualization.framework). The guest mounts it by
// Tag with Machine.ShareFilesystem.
type Share struct {
	// Tag names the share in the guest (mount source).
	Tag string
	// HostPath is the directory on the host.
	HostPath string
	// ReadOnly forbids writes from the guest.
	ReadOnly bool
}

// MaxSharePorts bounds Config.SharePorts: a virtio-serial device has at
// most 31 ports, one of which QEMU's agent channel may take.
const MaxSharePorts = 16

// SharePortName is the guest's name of spare port i (Config.SharePorts):
// berth.share.I, found under /sys/class/virtio-ports/*/name.
func SharePortName(i int) string { return "berth.share." + strconv.Itoa(i) }

// VirtioFSSharesTag is the tag of the one virtio-fs device that carries
// every boot-time share on Virtualization.framework.
const VirtioFSSharesTag = "berth-shares"

// GuestShare is how the guest mounts one of Config.Shares: Source with
// Fstype and Options (filesystem data, mount(8) -o style), the share
// being Subdir of that mount ("" its root). Shares with the same Source
// are directories of one device: the guest mounts it once.
type GuestShare struct {
	Fstype  string
	Source  string
	Options []string
	Subdir  string
}

// Network is the VM's NIC: virtio-net behind the hypervisor's user-mode
// NAT (QEMU -netdev user, vz's NAT), on a Berth network's switch when
// Link is set, or on a host TAP device when TAP is set; the backend's
// GuestNetwork says how the guest configures it.
type Network struct {
	// MAC is the NIC's address; empty: MACFor(Config.ID).
	MAC net.HardwareAddr
	// Link, when set, is the switch the NIC joins instead of the
	// hypervisor's NAT (engine/network's user-space networks). Backends
	// that cannot join one ignore it (vz, for now).
	Link Link
	// TAP, when set, names a host TAP device (on a Linux bridge: Berth's
	// bridge mode) the NIC uses instead of the hypervisor's NAT: QEMU's
	// -netdev tap. Only QEMU on Linux takes it.
	TAP string
	// Plan is the address the guest applies on a Link; nil: the
	// backend's own plan.
	Plan *GuestNetwork
}

// Link is a network switch a VM's NIC joins over a stream socket.
type Link interface {
	// ServeStream carries one NIC's Ethernet frames over conn, each
	// preceded by its length as 32 bits big-endian (QEMU's -netdev
	// stream), until conn fails or is closed.
	ServeStream(conn net.Conn) error
}

// PingFunc checks once that the guest's agent answers over d. The engine
// passes the agent client's Ping; the default only dials
// transport.AgentPort.
type PingFunc func(ctx context.Context, d transport.Dialer) error

// ShutdownFunc asks the guest to power off (the agent's Shutdown call);
// it returns once the request is delivered, not when the VM is gone.
type ShutdownFunc func(ctx context.Context, d transport.Dialer) error

// Config describes a VM.
type Config struct {
	// ID names the VM (the container ID): [A-Za-z0-9][A-Za-z0-9_.-]*. It
	// names files in StateDir and derives the default MAC address.
	ID string
	// StateDir holds the VM's runtime files (pid file, sockets where the
	// backend needs them). It must exist.
	StateDir string
	// Arch is the guest architecture (GOARCH); default the host's.
	Arch string
	// CPUs is the number of vCPUs; default 2.
	CPUs int
	// MemoryMiB is the guest memory; default 1024.
	MemoryMiB int
	// Kernel is the kernel image to boot: for speed an uncompressed one
	// (kernel.Kernel.BootImage); Virtualization.framework on arm64 needs
	// it uncompressed.
	Kernel string
	// Initramfs is the initramfs (engine/initramfs.Build).
	Initramfs string
	// Cmdline is appended to the backend's kernel command line (which
	// sets the console and boot-speed options).
	Cmdline string
	// Root is the container's root disk: the guest's first virtio-blk
	// device, /dev/vda.
	Root Disk
	// Disks are further disks: /dev/vdb, /dev/vdc, ...
	Disks []Disk
	// Network is the NIC; nil: no NIC.
	Network *Network
	// Shares are host directories given to the guest at boot.
	Shares []Share
	// SharePorts is the number of spare byte pipes (virtio-serial ports
	// named SharePortName(0..SharePorts-1)) the VM gets at boot for
	// run-time shares (Machine.SharePort), at most MaxSharePorts: the
	// engine's 9P server on the host end, guestinit's relay to the guest
	// kernel's 9P client on the other. Neither backend can add a port
	// to a running VM (Virtualization.framework has no hot-plug), so the
	// pool is fixed at boot.
	SharePorts int
	// ConsoleLog is the file the guest console is appended to; "": none.
	ConsoleLog string
	// Ping checks that the agent answers; nil: dial transport.AgentPort.
	Ping PingFunc
	// Shutdown asks the guest to power off; nil: the hypervisor's power
	// button (ACPI/PSCI), which a guest without a handler ignores.
	Shutdown ShutdownFunc
	// Template boots the VM as a template to save (Snapshotter): the
	// guest gets TemplateParam, the backend its save/restore device
	// layout, and Start returns once the console shows TemplateReady,
	// without ever talking to the agent. Root must still name a disk (any
	// size): the template guest never mounts it.
	Template bool
	// Restore, when set, is a state file a Template VM with the same
	// layout was saved to (Snapshotter.SaveState): the VM resumes from it
	// instead of booting, with Root as its root disk, and Start returns
	// once the agent answers; the caller then completes the guest with
	// the agent's FinishRestore. The Config must match the template's in
	// everything TemplateLayout covers.
	Restore string
	// OnState, when set, is called (on a goroutine of the Machine's, in
	// order) with each state the Machine enters.
	OnState func(State)
}

// Snapshotter is a Machine whose backend can save the VM's state for a
// later Config.Restore. QEMU saves with migrate; Virtualization.framework
// would with SaveMachineStateToPath and RestoreMachineStateFromURL
// (macOS 14), not implemented yet.
type Snapshotter interface {
	// SaveState pauses the VM (a running Template VM) and writes its
	// state to path (created 0600, replaced whole); the VM stays paused,
	// to be killed.
	SaveState(ctx context.Context, path string) error
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Validate checks the fields every backend needs and fills in defaults
// (CPUs, MemoryMiB, Arch, Network.MAC) on a copy.
func (c Config) Validate(hostArch string) (Config, error) {
	var errs []error
	if !idPattern.MatchString(c.ID) {
		errs = append(errs, fmt.Errorf("ID %q is not [A-Za-z0-9][A-Za-z0-9_.-]* (at most 128 characters)", c.ID))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("no StateDir"))
	}
	if c.Kernel == "" {
		errs = append(errs, errors.New("no Kernel"))
	}
	if c.Initramfs == "" {
		errs = append(errs, errors.New("no Initramfs"))
	}
	if c.Root.Path == "" {
		errs = append(errs, errors.New("no Root disk"))
	}
	if c.CPUs == 0 {
		c.CPUs = 2
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = 1024
	}
	if c.CPUs < 1 || c.MemoryMiB < 64 {
		errs = append(errs, fmt.Errorf("%d vCPUs and %d MiB: need at least 1 and 64", c.CPUs, c.MemoryMiB))
	}
	if c.Arch == "" {
		c.Arch = hostArch
	}
	if c.Template && c.Restore != "" {
		errs = append(errs, errors.New("a VM boots as a template or restores from one, not both"))
	}
	if (c.Template || c.Restore != "") && len(c.Shares) > 0 {
		errs = append(errs, errors.New("a template or restored VM has no boot-time shares (a mounted share cannot be saved)"))
	}
	tags := map[string]bool{}
	for _, s := range c.Shares {
		if s.Tag == "" || len(s.Tag) > 36 || tags[s.Tag] {
			errs = append(errs, fmt.Errorf("share tag %q: empty, longer than 36 bytes or used twice", s.Tag))
		}
		tags[s.Tag] = true
	}
	if c.SharePorts < 0 || c.SharePorts > MaxSharePorts {
		errs = append(errs, fmt.Errorf("%d share ports: need 0 to %d", c.SharePorts, MaxSharePorts))
	}
	if c.Network != nil {
		n := *c.Network
		if len(n.MAC) == 0 {
			n.MAC = MACFor(c.ID)
		}
		c.Network = &n
	}
	if len(errs) > 0 {
		return c, errdefs.InvalidArgument(fmt.Errorf("vm config: %w", errors.Join(errs...)))
	}
	return c, nil
}
