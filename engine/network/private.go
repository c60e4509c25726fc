package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
)

// PrivateOptions are a private network's settings.
type PrivateOptions struct {
	// Name names the network in logs ("berth-builder").
	Name string
	// Subnet is the network's; its first host address is the gateway,
	// the second the one VM's.
	Subnet netip.Prefix
}

// Private is a user-mode network of one VM that no container can join:
// the image builder's. It is not one of the Manager's networks (not
// listed, not attachable by name, no address table); it has its own
// user-space switch whose gateway resolves names through the host's
// resolvers and opens outbound connections on the host's sockets with
// the same filter as every user network (never the host's loopback nor
// any of Berth's networks). Listen serves a port on its gateway, inside
// its own user-space stack, so that only this network's VM reaches it.
// It is user mode in either networking mode: it needs no privileges and
// its gateway's services live in the engine.
type Private struct {
	info Info
	sw   *userSwitch
	once sync.Once
}

// OpenPrivate starts a private network on opts.Subnet (IPv4, /8 to
// /29). Close stops it.
func (m *Manager) OpenPrivate(opts PrivateOptions) (*Private, error) {
	subnet := opts.Subnet.Masked()
	if !subnet.IsValid() || !subnet.Addr().Is4() || subnet.Bits() < 8 || subnet.Bits() > 29 || subnet != opts.Subnet {
		return nil, errdefs.InvalidArgument(fmt.Errorf("open network %s: subnet %s: a network address of an IPv4 subnet from /8 to /29", opts.Name, opts.Subnet))
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, errdefs.Unavailable(fmt.Errorf("open network %s: the engine's networks are closed", opts.Name))
	}
	info := Info{Name: opts.Name, Subnet: subnet}
	res := &resolver{names: newNames(), subnet: subnet, hostAlias: info.HostAlias(), hostResolvers: m.resolvers, log: m.log.With("network", opts.Name)}
	sw, err := newUserSwitch(info, false, res, m.inBerth)
	if err != nil {
		return nil, fmt.Errorf("open network %s: %w", opts.Name, err)
	}
	return &Private{info: info, sw: sw}, nil
}

// Gateway is the network's gateway: its DNS server and where Listen
// serves.
func (p *Private) Gateway() netip.Addr { return p.info.Gateway() }

// Address is the VM's address: the gateway's next.
func (p *Private) Address() netip.Addr { return p.info.Gateway().Next() }

// Network is the VM's NIC on the network with its address plan
// (Address, the gateway as its route and DNS server).
func (p *Private) Network() *vmm.Network {
	return &vmm.Network{Link: p.sw, Plan: &vmm.GuestNetwork{
		Address: netip.PrefixFrom(p.Address(), p.info.Subnet.Bits()),
		Gateway: p.Gateway(),
		MTU:     mtu,
		DNS:     []netip.Addr{p.Gateway()},
	}}
}

// Listen listens on the gateway's TCP port, inside the network's
// user-space stack: only the network's VM can connect; nothing listens
// on the host.
func (p *Private) Listen(port uint16) (net.Listener, error) {
	if port == 53 {
		return nil, errdefs.InvalidArgument(errors.New("listen on a private network: port 53 is its DNS server's"))
	}
	ln, err := gonet.ListenTCP(p.sw.stack, tcpip.FullAddress{NIC: 1, Addr: tcpipAddr(p.Gateway()), Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("listen on network %s at %s:%d: %w", p.info.Name, p.Gateway(), port, err)
	}
	return ln, nil
}

// Close stops the network's switch, its DNS server and its listeners;
// the VM on it loses its network. Closing twice does nothing.
func (p *Private) Close() {
	p.once.Do(p.sw.close)
}
