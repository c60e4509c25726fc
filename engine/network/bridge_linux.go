package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/berthvm/berth/engine/vmm"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Names of what bridge mode makes on the host. Interface names are at
// most 15 bytes.
const (
	// bridgePrefix starts every Berth bridge's name: "berth0" is the
	// default network's, "berth-" and 9 hex digits of its ID another's.
	bridgePrefix = "berth"
	// tapPrefix starts every VM's TAP device: "bt-" and 12 hex digits
	// of a hash of its container's and its network's IDs.
	tapPrefix = "bt-"
	// nftTable is the nftables table (family ip) of Berth's NAT and
	// isolation rules.
	nftTable = "berth"
)

// bridgeName is the Linux bridge of network info.
func bridgeName(info Info) string {
	if info.Default {
		return bridgePrefix + "0"
	}
	return bridgePrefix + "-" + info.ID[:9]
}

// tapName is container id's TAP device on network info.
func tapName(id string, info Info) string {
	sum := sha256.Sum256([]byte(id + "/" + info.ID))
	return tapPrefix + hex.EncodeToString(sum[:])[:12]
}

// bridgeHost is bridge mode's host side: the nftables table with the
// rules of every open bridge (outbound NAT, isolation between networks)
// and IPv4 forwarding. It assumes it is the only bridge-mode engine in
// its network namespace: it owns the names it makes (berth*, bt-*,
// table ip berth) and removes stale ones at start.
type bridgeHost struct {
	log *slog.Logger

	mu   sync.Mutex
	nets map[string]*bridgeNet // open bridges, by bridge name
}

// newBridgeHost checks that bridge mode can work here (TAP devices,
// nftables, IPv4 forwarding), removes what a previous engine left (TAP
// devices, the table; bridges of networks not in keep) and turns on
// IPv4 forwarding.
func newBridgeHost(log *slog.Logger, keep []Info) (*bridgeHost, error) {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return nil, fmt.Errorf("bridge mode: no TAP devices: %w", err)
	}
	h := &bridgeHost{log: log, nets: map[string]*bridgeNet{}}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("bridge mode: list links: %w", err)
	}
	kept := map[string]bool{}
	for _, i := range keep {
		kept[bridgeName(i)] = true
	}
	for _, l := range links {
		name := l.Attrs().Name
		stale := false
		switch l.(type) {
		case *netlink.Tuntap:
			stale = strings.HasPrefix(name, tapPrefix)
		case *netlink.Bridge:
			stale = strings.HasPrefix(name, bridgePrefix) && !kept[name]
		}
		if stale {
			if err := netlink.LinkDel(l); err != nil {
				log.Warn("bridge mode: remove a stale link", "link", name, "err", err)
			}
		}
	}
	if err := h.syncRules(); err != nil {
		return nil, err
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		_ = h.close()
		return nil, fmt.Errorf("bridge mode: turn on IPv4 forwarding: %w", err)
	}
	return h, nil
}

// open brings up network info's bridge (making it if needed) with the
// gateway and host alias addresses, its DNS server (names) on the
// gateway's port 53, and its rules.
func (h *bridgeHost) open(info Info, names dns.Handler) (*bridgeNet, error) {
	name := bridgeName(info)
	br, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return nil, fmt.Errorf("bridge network %s: %w", info.Name, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = name
		la.MTU = mtu
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return nil, fmt.Errorf("bridge network %s: create bridge %s: %w", info.Name, name, err)
		}
		if br, err = netlink.LinkByName(name); err != nil {
			return nil, fmt.Errorf("bridge network %s: %w", info.Name, err)
		}
	}
	b := &bridgeNet{host: h, info: info, name: name, link: br}
	for _, a := range []netip.Addr{info.Gateway(), info.HostAlias()} {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(info.Subnet.Bits(), 32)}}
		if err := netlink.AddrReplace(br, addr); err != nil {
			b.delete()
			return nil, fmt.Errorf("bridge network %s: address %s on %s: %w", info.Name, a, name, err)
		}
	}
	if err := netlink.LinkSetUp(br); err != nil {
		b.delete()
		return nil, fmt.Errorf("bridge network %s: bring %s up: %w", info.Name, name, err)
	}
	if err := b.serveDNS(names); err != nil {
		b.delete()
		return nil, fmt.Errorf("bridge network %s: DNS server on %s:53: %w", info.Name, info.Gateway(), err)
	}
	h.mu.Lock()
	h.nets[name] = b
	h.mu.Unlock()
	if err := h.syncRules(); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// syncRules writes table ip berth afresh, in one transaction, for the
// open bridges:
//
//	chain forward  (filter, forward hook): iifname B oifname "berth*" oifname != B drop
//	chain input    (filter, input hook):   iifname "berth*" iifname != B ip daddr SUBNET(B) drop
//	chain postrouting (nat, srcnat):       ip saddr SUBNET(B) oifname != B masquerade
//
// and for an internal network's B, in chain forward, instead of the
// masquerade: iifname B oifname != B drop; oifname B iifname != B drop.
//
// The first keeps networks apart (a packet from one bridge never leaves
// by another, whatever addresses it claims); the second keeps each
// network's own host addresses (its gateway with its DNS server, its
// host alias) to it; the third lets containers reach what the host
// reaches, under the host's address.
func (h *bridgeHost) syncRules() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("bridge mode: nftables: %w", err)
	}
	defer c.CloseLasting()
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable})
	c.FlushTable(t)
	accept := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	in := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	for _, name := range slices.Sorted(maps.Keys(h.nets)) {
		b := h.nets[name]
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: slices.Concat(
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, ifnameBytes(name)),
			ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, []byte(bridgePrefix)),
			ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, ifnameBytes(name)),
			[]expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}},
		)})
		if b.info.Internal {
			// No way out, nor in from elsewhere than the bridge itself.
			for _, key := range [][2]expr.MetaKey{{expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME}, {expr.MetaKeyOIFNAME, expr.MetaKeyIIFNAME}} {
				c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: slices.Concat(
					ifname(key[0], expr.CmpOpEq, ifnameBytes(name)),
					ifname(key[1], expr.CmpOpNeq, ifnameBytes(name)),
					[]expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}},
				)})
			}
		}
		sub := b.info.Subnet.Masked()
		c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: slices.Concat(
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, []byte(bridgePrefix)),
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, ifnameBytes(name)),
			inSubnet(16, sub),
			[]expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}},
		)})
		if b.info.Internal {
			continue
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: slices.Concat(
			inSubnet(12, sub),
			ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, ifnameBytes(name)),
			[]expr.Any{&expr.Masq{}},
		)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("bridge mode: nftables table ip %s: %w", nftTable, err)
	}
	return nil
}

// ifname compares an interface name (in or out, by key) with name:
// ifnameBytes for the whole name, the bare bytes of a prefix for nft's
// "prefix*".
func ifname(key expr.MetaKey, op expr.CmpOp, name []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: name},
	}
}

// inSubnet matches an IPv4 header's address at offset (12: source, 16:
// destination) in sub.
func inSubnet(offset uint32, sub netip.Prefix) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: net.CIDRMask(sub.Bits(), 32), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: sub.Addr().AsSlice()},
	}
}

// ifnameBytes is an interface name as the kernel compares it: padded
// with NULs to IFNAMSIZ.
func ifnameBytes(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// close removes the table (the bridges are removed by their own close).
func (h *bridgeHost) close() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("bridge mode: nftables: %w", err)
	}
	defer c.CloseLasting()
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("bridge mode: remove nftables table ip %s: %w", nftTable, err)
	}
	return nil
}

// bridgeNet is one network in bridge mode: a Linux bridge whose
// addresses are the network's gateway and host alias, a TAP device per
// VM on it, a DNS server on the gateway's port 53 (host sockets), and
// rules in the host's table. The host reaches every container's address
// directly; published ports are carried by the engine's sockets, as in
// user mode.
type bridgeNet struct {
	host *bridgeHost
	info Info
	name string
	link netlink.Link

	dnsUDP, dnsTCP *dns.Server
	wg             sync.WaitGroup
}

var _ fabric = (*bridgeNet)(nil)

// serveDNS serves DNS on the gateway's port 53 (UDP and TCP) with h.
func (b *bridgeNet) serveDNS(h dns.Handler) error {
	addr := netip.AddrPortFrom(b.info.Gateway(), 53).String()
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
		return err
	}
	b.dnsUDP = &dns.Server{PacketConn: pc, Handler: h}
	b.dnsTCP = &dns.Server{Listener: ln, Handler: h}
	started := make(chan struct{}, 2)
	for _, srv := range []*dns.Server{b.dnsUDP, b.dnsTCP} {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		b.wg.Add(1)
		go func() { defer b.wg.Done(); _ = srv.ActivateAndServe() }()
	}
	<-started
	<-started
	return nil
}

// nic makes container id's TAP device on the bridge, up, for QEMU to
// open by name; release removes it.
func (b *bridgeNet) nic(id string) (nic, error) {
	name := tapName(id, b.info)
	if old, err := netlink.LinkByName(name); err == nil {
		_ = netlink.LinkDel(old) // a run's that ended without its release
	}
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.MTU = mtu
	la.MasterIndex = b.link.Attrs().Index
	tap := &netlink.Tuntap{LinkAttrs: la, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR}
	if err := netlink.LinkAdd(tap); err != nil {
		return nil, fmt.Errorf("bridge network %s: create TAP device %s: %w", b.info.Name, name, err)
	}
	for _, f := range tap.Fds {
		f.Close() // persistent: QEMU opens it by name
	}
	if err := netlink.LinkSetUp(tap); err != nil {
		_ = netlink.LinkDel(tap)
		return nil, fmt.Errorf("bridge network %s: bring TAP device %s up: %w", b.info.Name, name, err)
	}
	return tapNIC{name: name, net: b.info.Name, log: b.host.log}, nil
}

// tapNIC is a VM's NIC on a bridge: its TAP device.
type tapNIC struct {
	name, net string
	log       *slog.Logger
}

func (t tapNIC) network() *vmm.Network { return &vmm.Network{TAP: t.name} }

func (t tapNIC) release() {
	l, err := netlink.LinkByName(t.name)
	if err == nil {
		err = netlink.LinkDel(l)
	}
	var nf netlink.LinkNotFoundError
	if err != nil && !errors.As(err, &nf) {
		t.log.Warn("bridge mode: remove TAP device", "network", t.net, "tap", t.name, "err", err)
	}
}

// dialTCP connects to a container's port through the bridge.
func (b *bridgeNet) dialTCP(ctx context.Context, ip netip.Addr, port uint16) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp4", netip.AddrPortFrom(ip, port).String())
}

// dialUDP opens a host socket connected to a container's UDP port.
func (b *bridgeNet) dialUDP(ip netip.Addr, port uint16) (net.Conn, error) {
	return net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, port)))
}

// close stops the DNS server, drops the bridge's rules and removes the
// bridge (VMs still on it lose their network).
func (b *bridgeNet) close() {
	if b.dnsUDP != nil {
		_ = b.dnsUDP.Shutdown()
		_ = b.dnsTCP.Shutdown()
		b.wg.Wait()
	}
	b.host.mu.Lock()
	delete(b.host.nets, b.name)
	b.host.mu.Unlock()
	if err := b.host.syncRules(); err != nil {
		b.host.log.Warn("bridge mode: rules", "network", b.info.Name, "err", err)
	}
	b.delete()
}

// delete removes the bridge.
func (b *bridgeNet) delete() {
	if err := netlink.LinkDel(b.link); err != nil {
		b.host.log.Warn("bridge mode: remove bridge", "network", b.info.Name, "bridge", b.name, "err", err)
	}
}
