package container

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/network"
	"github.com/berthvm/berth/engine/share"
	"github.com/berthvm/berth/engine/vmm"
)

// ColdBootLabel, set to "true" on a container (`berth run --cold`),
// makes its VM boot cold even where the engine restores VMs from saved
// templates (fast start).
const ColdBootLabel = "io.berth.cold-boot"

// VMLauncher boots one container's micro-VM. The engine's implementation
// (engine/launcher) picks the backend (QEMU on Linux,
// Virtualization.framework on macOS), the kernel and the initramfs; the
// container package never knows which.
type VMLauncher interface {
	// Prepare makes ready what every VM boots (the kernel's boot image,
	// the initramfs): work done once per content and cached, that can
	// take long the first time (a download, an extraction). Start calls
	// it before the boot timeout starts counting, so a first start on a
	// busy machine is not cut short by work no later start repeats, and
	// hands its result to Launch in LaunchRequest.Boot.
	Prepare(ctx context.Context) (BootFiles, error)
	// Launch boots one VM; ctx bounds the boot.
	Launch(ctx context.Context, req LaunchRequest) (VM, error)
}

// BootFiles are what a VM boots, as VMLauncher.Prepare made them.
type BootFiles struct {
	// Arch is the guest's architecture (GOARCH spelling).
	Arch string
	// Kernel is the kernel's uncompressed boot image.
	Kernel string
	// Initramfs holds guestinit and the kernel modules the guest needs.
	Initramfs string
}

// LaunchRequest describes the VM one container needs.
type LaunchRequest struct {
	// ID is the container's ID (names the VM, derives its MAC address).
	ID string
	// Boot is what the VM boots (VMLauncher.Prepare's result).
	Boot BootFiles
	// Dir is the container's directory, for the VM's sockets and pid file.
	Dir string
	// Rootfs is the container's ext4 image, attached read-write (a
	// read-only container root is a read-only mount inside the guest).
	Rootfs string
	// ConsoleLog receives the VM's console.
	ConsoleLog string
	// CPUs and MemoryBytes size the VM.
	CPUs        int
	MemoryBytes uint64
	// Shares are the host directories the VM gets at boot (share.Plan of
	// the container's mounts).
	Shares []vmm.Share
	// Network is the VM's NIC on a Berth network (Networks.Attach); nil:
	// the backend's own NAT, or no NIC with NoNetwork.
	Network *vmm.Network
	// Cold boots the VM even where the launcher would restore it from a
	// saved template (fast start): the container asked for a cold boot.
	Cold bool
	// NoNetwork boots the VM without a NIC (--network none).
	NoNetwork bool
	// SharePorts is the number of spare byte pipes the VM gets for
	// run-time shares (vmm.Config.SharePorts, VM.SharePort).
	SharePorts int
	// Disks are further disks after the root (/dev/vdb, …): the image
	// builder's cache disk.
	Disks []vmm.Disk
}

// Networks attaches containers to Berth's networks (engine/network's
// Manager behind an adapter): an address per container, its VM's place
// on the network's switch, and the ports it publishes.
type Networks interface {
	// Attach joins a container to its network for one run, binding the
	// host side of its published ports (a port in use fails here, before
	// the VM boots) and making its names resolve there.
	Attach(ctx context.Context, req network.AttachRequest) (NetworkAttachment, error)
	// Release frees container id's addresses (at its removal).
	Release(id string) error
	// Resolve returns the name of the network ref names (a name, an ID
	// or an ID prefix); errdefs.ErrNotFound when there is none.
	Resolve(ref string) (string, error)
	// Rename gives running container id its new name in DNS.
	Rename(id, name string)
}

// NetworkAttachment is one run's place on a network.
type NetworkAttachment interface {
	// Network is the VM's NIC.
	Network() *vmm.Network
	// Ports are the published ports as bound.
	Ports() []network.PortSpec
	// HostAlias is the network's address for the host
	// (host.berth.internal; --add-host NAME:host-gateway).
	HostAlias() netip.Addr
	// Close withdraws the published ports.
	Close() error
}

// Volumes makes the named volumes a container mounts (engine/share's
// Store is one).
type Volumes interface {
	share.VolumeCreator
	// Remove deletes a volume no container uses (anonymous volumes of an
	// --rm container).
	Remove(name string, force bool) error
}

// VM is a booted micro-VM as a container drives it.
type VM interface {
	// Dialer reaches ports the guest listens on (the agent, stdio).
	Dialer() transport.Dialer
	// Network is the backend's address plan for the guest's NIC; nil
	// when the guest has no NIC or configures none itself.
	Network() *vmm.GuestNetwork
	// Pid is the process running the VM (QEMU's, or the engine's own when
	// the VM runs in-process).
	Pid() int
	// Backend names the backend and accelerator ("qemu (kvm)").
	Backend() string
	// Done is closed when the VM has stopped; Err then says why
	// (nil for a clean power-off).
	Done() <-chan struct{}
	Err() error
	// Kill stops the VM at once, without asking the guest.
	Kill() error
	// ConsoleTail returns the last lines of the console log, for errors.
	ConsoleTail(n int) string
	// GuestShare says how the guest mounts one of LaunchRequest.Shares.
	GuestShare(s vmm.Share) vmm.GuestShare
	// SharePort is the host end of spare port i (0 <= i <
	// LaunchRequest.SharePorts), the guest's vmm.SharePortName(i).
	SharePort(i int) (net.Conn, error)
}

// leaseTimeout bounds a guest's DHCP exchange at start.
const leaseTimeout = 10 * time.Second

// leaseNetwork has the guest get a DHCP lease (a backend whose
// GuestNetwork says DHCP) and returns it as the guest's network, checked
// here: it is the guest's word.
func leaseNetwork(ctx context.Context, ac *agent.Client, hostname string) (*vmm.GuestNetwork, error) {
	l, err := ac.AcquireLease(ctx, &agentpb.LeaseRequest{Hostname: hostname, TimeoutMs: uint32(leaseTimeout / time.Millisecond)})
	if err != nil {
		return nil, fmt.Errorf("get the VM's address from the network's DHCP server (macOS's vmnet on a Mac; restarting the container tries again): %w", err)
	}
	bad := func(what, v string) error {
		return fmt.Errorf("get the VM's address by DHCP: the guest reported %s %q, which is not valid", what, v)
	}
	gn := &vmm.GuestNetwork{MTU: int(l.Mtu)}
	if gn.Address, err = netip.ParsePrefix(l.Address); err != nil || !gn.Address.Addr().Is4() {
		return nil, bad("address", l.Address)
	}
	if l.Gateway != "" {
		if gn.Gateway, err = netip.ParseAddr(l.Gateway); err != nil || !gn.Address.Masked().Contains(gn.Gateway) {
			return nil, bad("gateway", l.Gateway)
		}
	}
	for _, d := range l.DnsServers {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, bad("DNS server", d)
		}
		gn.DNS = append(gn.DNS, a)
	}
	if l.Mtu != 0 && (l.Mtu < 576 || l.Mtu > 65535) {
		return nil, bad("MTU", fmt.Sprint(l.Mtu))
	}
	return gn, nil
}

// networkRequest is the agent's network configuration for a backend's
// address plan (nil: an unconfigured NIC); the container's own settings
// (hostname, DNS, hosts) are added by the caller.
func networkRequest(n *vmm.GuestNetwork) *agentpb.ConfigureNetworkRequest {
	req := &agentpb.ConfigureNetworkRequest{}
	if n == nil {
		return req
	}
	if n.Address.IsValid() {
		req.Address = n.Address.String()
	}
	if n.Gateway.IsValid() {
		req.Gateway = n.Gateway.String()
	}
	req.Mtu = uint32(n.MTU)
	for _, d := range n.DNS {
		req.DnsServers = append(req.DnsServers, d.String())
	}
	return req
}
