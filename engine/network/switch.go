package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/berthvm/berth/engine/vmm"
	"github.com/containers/gvisor-tap-vsock/pkg/services/forwarder"
	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"github.com/containers/gvisor-tap-vsock/pkg/types"
	"github.com/miekg/dns"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// gatewayMAC is the gateway's Ethernet address on every user network (a
// locally administered one).
const gatewayMAC = "02:be:27:00:00:01"

// mtu is the MTU of a user network's links.
const mtu = 1500

// userSwitch is one user-mode network: gvisor-tap-vsock's virtual switch
// (an Ethernet switch that learns which VM has which MAC) with a gVisor
// TCP/IP stack as the gateway on it. Frames between VMs go switch to
// VM; frames for the gateway reach the stack, whose forwarders open the
// connections on the host's sockets (outbound traffic) and whose DNS
// server at the gateway's address (a resolver) answers the network's
// names and forwards the rest.
//
// The forwarders only dial addresses outside the host: loopback
// (127.0.0.0/8), 0.0.0.0/8 and the network's own subnet are dropped, so
// a guest cannot reach the host's loopback services, even with hand-made
// packets, unless hostLoopback maps one alias address to 127.0.0.1.
type userSwitch struct {
	subnet  netip.Prefix
	gateway netip.Addr
	// hostAlias is the address that reaches the host's 127.0.0.1 when
	// the opt-in is on; invalid when it is off.
	hostAlias netip.Addr
	// internal: the forwarders dial nothing (--internal).
	internal bool
	// berth reports whether an address is in any Berth network's subnet.
	berth func(netip.Addr) bool

	stack  *stack.Stack
	sw     *tap.Switch
	dnsUDP *dns.Server
	dnsTCP *dns.Server

	wg sync.WaitGroup
}

// newUserSwitch builds network info's switch with its gateway (the
// subnet's first address), whose port 53 names answers. With
// hostLoopback, the host alias is answered by the gateway too and translated to the host's
// 127.0.0.1: the opt-in to reach the host's loopback services.
//
// berth reports whether an address is in one of Berth's networks: the
// forwarders refuse those (another network's containers are on another
// switch, never behind the host's sockets).
//
// An internal network's (info.Internal) forwarders dial nothing.
func newUserSwitch(info Info, hostLoopback bool, names dns.Handler, berth func(netip.Addr) bool) (*userSwitch, error) {
	subnet, gateway, hostAlias := info.Subnet, info.Gateway(), info.HostAlias()
	var virtualIPs []string
	nat := map[tcpip.Address]tcpip.Address{}
	if !hostLoopback || info.Internal {
		hostAlias = netip.Addr{}
	}
	if hostAlias.IsValid() {
		virtualIPs = append(virtualIPs, hostAlias.String())
		nat[tcpipAddr(hostAlias)] = tcpipAddr(netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	}
	ep, err := tap.NewLinkEndpoint(false, mtu, gatewayMAC, gateway.String(), virtualIPs)
	if err != nil {
		return nil, fmt.Errorf("user network %s: gateway link: %w", subnet, err)
	}
	sw := tap.NewSwitch(false)
	ep.Connect(sw)
	sw.Connect(ep)

	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	u := &userSwitch{subnet: subnet, gateway: gateway, hostAlias: hostAlias, internal: info.Internal, berth: berth, stack: s, sw: sw}
	if err := u.setupStack(ep, nat); err != nil {
		s.Close()
		s.Wait()
		return nil, fmt.Errorf("user network %s: %w", subnet, err)
	}
	if err := u.serveDNS(names); err != nil {
		s.Close()
		s.Wait()
		return nil, fmt.Errorf("user network %s: DNS server: %w", subnet, err)
	}
	return u, nil
}

// setupStack gives the stack its one NIC (the gateway's link), the
// gateway's address, a route to the subnet, and the outbound forwarders
// behind the address filter.
func (u *userSwitch) setupStack(ep stack.LinkEndpoint, nat map[tcpip.Address]tcpip.Address) error {
	s := u.stack
	if err := s.CreateNIC(1, ep); err != nil {
		return fmt.Errorf("create NIC: %s", err)
	}
	if err := s.AddProtocolAddress(1, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpipAddr(u.gateway).WithPrefix(),
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("gateway address: %s", err)
	}
	// Spoofing and promiscuous mode: the gateway accepts connections to
	// any address (the forwarders dial them on the host) and answers
	// from it.
	if err := s.SetSpoofing(1, true); err != nil {
		return fmt.Errorf("spoofing: %s", err)
	}
	if err := s.SetPromiscuousMode(1, true); err != nil {
		return fmt.Errorf("promiscuous mode: %s", err)
	}
	b := u.subnet.Addr().As4()
	mask := net.CIDRMask(u.subnet.Bits(), 32)
	sub, err := tcpip.NewSubnet(tcpip.AddrFrom4(b), tcpip.MaskFromBytes(mask))
	if err != nil {
		return fmt.Errorf("route: %w", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: sub, NIC: 1}})

	var natLock sync.Mutex
	tcpFwd := forwarder.TCP(s, nat, &natLock, false)
	udpFwd := forwarder.UDP(s, nat, &natLock, false)
	// A refused destination is left unhandled: the stack answers it as
	// a closed port (TCP reset, ICMP port unreachable), so the guest
	// sees "connection refused" at once rather than a timeout.
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		return u.outboundAllowed(id.LocalAddress) && tcpFwd.HandlePacket(id, pkt)
	})
	s.SetTransportProtocolHandler(udp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		return u.outboundAllowed(id.LocalAddress) && udpFwd.HandlePacket(id, pkt)
	})
	return nil
}

// outboundAllowed says whether a guest's connection to dst may be
// opened on the host: not to the host's loopback, 0.0.0.0/8, the
// network's own subnet or any other Berth network's (there is no host
// behind those: another network's containers are on another switch),
// except the host-loopback alias when it is on.
func (u *userSwitch) outboundAllowed(dst tcpip.Address) bool {
	if dst.Len() != 4 || u.internal {
		return false
	}
	a := netip.AddrFrom4(dst.As4())
	if u.hostAlias.IsValid() && a == u.hostAlias {
		return true
	}
	switch {
	case a.IsLoopback(), a.IsUnspecified(), a.As4()[0] == 0, a.IsMulticast():
		return false
	case u.subnet.Contains(a), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return false
	case u.berth != nil && u.berth(a):
		return false
	}
	return true
}

// serveDNS serves DNS on the gateway's port 53 (UDP and TCP) with h.
func (u *userSwitch) serveDNS(h dns.Handler) error {
	addr := tcpip.FullAddress{NIC: 1, Addr: tcpipAddr(u.gateway), Port: 53}
	uc, err := gonet.DialUDP(u.stack, &addr, nil, ipv4.ProtocolNumber)
	if err != nil {
		return err
	}
	ln, err := gonet.ListenTCP(u.stack, addr, ipv4.ProtocolNumber)
	if err != nil {
		uc.Close()
		return err
	}
	u.dnsUDP = &dns.Server{PacketConn: uc, Handler: h}
	u.dnsTCP = &dns.Server{Listener: ln, Handler: h}
	started := make(chan struct{}, 2)
	for _, srv := range []*dns.Server{u.dnsUDP, u.dnsTCP} {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		u.wg.Add(1)
		go func() { defer u.wg.Done(); _ = srv.ActivateAndServe() }()
	}
	// Shutdown before a server has started would not stop it.
	<-started
	<-started
	return nil
}

// ServeStream carries one VM NIC's frames over conn in QEMU's stream
// framing (each frame preceded by its length, 32 bits big-endian) until
// conn fails or closes.
func (u *userSwitch) ServeStream(conn net.Conn) error {
	return u.sw.Accept(context.Background(), conn, types.QemuProtocol)
}

// dialTCP opens a TCP connection from the gateway to a guest's port.
func (u *userSwitch) dialTCP(ctx context.Context, ip netip.Addr, port uint16) (net.Conn, error) {
	return gonet.DialContextTCP(ctx, u.stack, tcpip.FullAddress{NIC: 1, Addr: tcpipAddr(ip), Port: port}, ipv4.ProtocolNumber)
}

// dialUDP opens a UDP socket on the gateway (an ephemeral port)
// connected to a guest's port.
func (u *userSwitch) dialUDP(ip netip.Addr, port uint16) (net.Conn, error) {
	return gonet.DialUDP(u.stack, nil, &tcpip.FullAddress{NIC: 1, Addr: tcpipAddr(ip), Port: port}, ipv4.ProtocolNumber)
}

// nic joins a VM's NIC to the switch over a stream socket; there is
// nothing on the host to release.
func (u *userSwitch) nic(string) (nic, error) { return switchPort{u}, nil }

// switchPort is a VM's NIC on a user switch.
type switchPort struct{ sw *userSwitch }

func (p switchPort) network() *vmm.Network { return &vmm.Network{Link: p.sw} }
func (switchPort) release()                {}

// close stops the DNS server and the stack; VMs still attached lose
// their network.
func (u *userSwitch) close() {
	_ = u.dnsUDP.Shutdown()
	_ = u.dnsTCP.Shutdown()
	u.wg.Wait()
	u.stack.Close()
	u.stack.Wait()
}

func tcpipAddr(a netip.Addr) tcpip.Address { return tcpip.AddrFrom4(a.As4()) }
