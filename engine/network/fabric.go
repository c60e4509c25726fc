package network

import (
	"context"
	"net"
	"net/netip"

	"github.com/berthvm/berth/engine/vmm"
)

// fabric is one network's data path: a user-space switch in the engine
// (user mode, userSwitch) or a Linux bridge on the host (bridge mode,
// bridgeNet). The Manager's networks, addresses, names and published
// ports are the same over either.
type fabric interface {
	// nic makes container id's NIC on the network for one run.
	nic(id string) (nic, error)
	// dialTCP connects from the host side to a container's TCP port
	// (a published port's connection).
	dialTCP(ctx context.Context, ip netip.Addr, port uint16) (net.Conn, error)
	// dialUDP opens a socket on the host side connected to a
	// container's UDP port (a published port's flow).
	dialUDP(ip netip.Addr, port uint16) (net.Conn, error)
	// close stops the network's data path (and its DNS server); VMs
	// still on it lose their network.
	close()
}

// nic is a VM's NIC on a network for one run.
type nic interface {
	// network is the VM's NIC as its backend takes it (without the
	// address plan).
	network() *vmm.Network
	// release undoes what the NIC holds on the host (a TAP device),
	// once the VM is gone.
	release()
}
