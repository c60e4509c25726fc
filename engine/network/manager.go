package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
)

// DefaultSubnet is the default network's subnet. The network lives in
// user space, so it needs no route on the host and clashes with nothing
// there; what it hides from containers is the host's own networks of the
// same range (a container cannot reach a LAN host whose address is in
// it). 192.168.127.0/24 is outside Docker's pools (172.17.0.0/16 and up),
// Podman's bridge (10.88.0.0/16), the ranges home routers hand out
// (192.168.0.x, 192.168.1.x, 192.168.178.x) and the 10/8 most company
// networks and VPNs use; it is also gvisor-tap-vsock's own default, so
// advice written for Podman machine applies.
var DefaultSubnet = netip.MustParsePrefix("192.168.127.0/24")

// DefaultName is the default network's name.
const DefaultName = "default"

// Config configures a Manager.
type Config struct {
	// Dir holds the networks' state (the address table, Dir/default.json).
	Dir string
	// Subnet is the default network's; zero: DefaultSubnet.
	Subnet netip.Prefix
	// HostLoopback lets containers reach the host's loopback services
	// (127.0.0.1) at the network's last host address (HostAlias). Off by
	// default: a container reaches what the host reaches on its networks,
	// not the services the host keeps to itself.
	HostLoopback bool
	// Log receives what goes wrong with a published port's connection.
	Log *slog.Logger
}

// Manager owns Berth's user-mode ("user", rootless) networking: the
// default network's address plan, its addresses (IPAM, kept under
// Config.Dir), and its user-space switch, which every container's VM
// joins and which carries the ports containers publish. The switch
// starts with the first Attach. It is safe for concurrent use.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	ipam      *IPAM
	hostAlias netip.Addr

	mu     sync.Mutex
	sw     *userSwitch
	closed bool
}

// New opens the networks' state under cfg.Dir.
func New(cfg Config) (*Manager, error) {
	if cfg.Subnet == (netip.Prefix{}) {
		cfg.Subnet = DefaultSubnet
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	subnet := cfg.Subnet.Masked()
	alias := lastHost(subnet)
	ipam, err := OpenIPAM(filepath.Join(cfg.Dir, DefaultName+".json"), subnet, alias)
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, log: cfg.Log, ipam: ipam, hostAlias: alias}, nil
}

// Mode names the networking mode: "user" (a user-space network, no
// privileges needed).
func (m *Manager) Mode() string { return "user" }

// HostAlias is the address at which containers reach the host's
// loopback when Config.HostLoopback is on.
func (m *Manager) HostAlias() netip.Addr { return m.hostAlias }

// IPAM is the default network's address table.
func (m *Manager) IPAM() *IPAM { return m.ipam }

// Keep releases the addresses of containers keep rejects (ones an engine
// removed without releasing).
func (m *Manager) Keep(keep func(id string) bool) error { return m.ipam.Keep(keep) }

// Release frees container id's address (at its removal).
func (m *Manager) Release(id string) error { return m.ipam.Release(id) }

// switchLocked returns the default network's switch, starting it on
// first use.
func (m *Manager) switchLocked() (*userSwitch, error) {
	if m.closed {
		return nil, errdefs.Unavailable(errors.New("the engine's networks are closed"))
	}
	if m.sw != nil {
		return m.sw, nil
	}
	var alias netip.Addr
	if m.cfg.HostLoopback {
		alias = m.hostAlias
	}
	sw, err := newUserSwitch(m.ipam.Subnet(), m.ipam.Gateway(), alias)
	if err != nil {
		return nil, err
	}
	m.sw = sw
	return sw, nil
}

// Attach joins container id to the default network for one run: it
// leases id's address (the one it had, if any), and binds the host side
// of each published port, so that a port in use fails here, before the
// VM boots. The attachment's Network is what the VM's NIC is given;
// Close withdraws the ports at the run's end (the address stays id's
// until Release).
func (m *Manager) Attach(ctx context.Context, id string, ports []PortSpec) (*Attachment, error) {
	m.mu.Lock()
	sw, err := m.switchLocked()
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ip, err := m.ipam.Lease(id)
	if err != nil {
		return nil, err
	}
	a := &Attachment{
		sw: sw,
		plan: vmm.GuestNetwork{
			Address: netip.PrefixFrom(ip, m.ipam.Subnet().Bits()),
			Gateway: m.ipam.Gateway(),
			MTU:     mtu,
			DNS:     []netip.Addr{m.ipam.Gateway()},
		},
	}
	for _, p := range ports {
		pub, err := publish(sw, ip, p, m.log.With("container", id))
		if err != nil {
			a.Close()
			return nil, err
		}
		a.ports = append(a.ports, pub)
	}
	return a, nil
}

// Close stops the default network's switch (containers still attached
// lose their network) and refuses further Attach calls.
func (m *Manager) Close() error {
	m.mu.Lock()
	sw := m.sw
	m.sw, m.closed = nil, true
	m.mu.Unlock()
	if sw != nil {
		sw.close()
	}
	return nil
}

// Attachment is one container run's place on a network: its address
// plan and the ports it publishes.
type Attachment struct {
	sw    *userSwitch
	plan  vmm.GuestNetwork
	ports []*publisher
	once  sync.Once
}

// Network is the VM's NIC: the address plan the guest applies and the
// switch its frames go to.
func (a *Attachment) Network() *vmm.Network {
	plan := a.plan
	return &vmm.Network{Link: a.sw, Plan: &plan}
}

// Address is the container's address.
func (a *Attachment) Address() netip.Addr { return a.plan.Address.Addr() }

// Ports are the published ports as bound (a host port of 0 in the spec
// is the one the kernel picked).
func (a *Attachment) Ports() []PortSpec {
	out := make([]PortSpec, 0, len(a.ports))
	for _, p := range a.ports {
		out = append(out, p.spec)
	}
	return out
}

// Close withdraws the published ports: their listeners close and the
// connections through them end. It waits for their goroutines.
func (a *Attachment) Close() error {
	a.once.Do(func() {
		for _, p := range a.ports {
			p.close()
		}
	})
	return nil
}

// lastHost is p's last address before the broadcast address.
func lastHost(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	host |= ^uint32(0) >> p.Bits()
	host--
	return netip.AddrFrom4([4]byte{byte(host >> 24), byte(host >> 16), byte(host >> 8), byte(host)})
}

// publisher is one published port: a listener on the host whose
// connections it carries to the container's port through the switch.
type publisher struct {
	spec PortSpec
	ln   net.Listener
	sw   *userSwitch
	ip   netip.Addr
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// publish binds spec's host side and starts serving it.
func publish(sw *userSwitch, ip netip.Addr, spec PortSpec, log *slog.Logger) (*publisher, error) {
	ln, err := net.Listen("tcp", spec.listenAddr())
	if err != nil {
		return nil, bindError(spec, err)
	}
	if spec.HostIP == (netip.Addr{}) {
		spec.HostIP = DefaultHostIP
	}
	spec.HostPort = uint16(ln.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{spec: spec, ln: ln, sw: sw, ip: ip, log: log, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// bindError explains why spec's host side could not be bound.
func bindError(spec PortSpec, err error) error {
	addr := spec.listenAddr()
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return errdefs.Conflict(fmt.Errorf("publish %s: host port %d on %s is already in use: pick another host port (-p OTHER:%d) or stop what listens there", spec, spec.HostPort, addr, spec.ContainerPort))
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return errdefs.InvalidArgument(fmt.Errorf("publish %s: %s is not an address of this host", spec, spec.HostIP))
	case errors.Is(err, syscall.EACCES):
		return errdefs.PermissionDenied(fmt.Errorf("publish %s: host port %d needs privileges Berth does not have: use a port above 1023", spec, spec.HostPort))
	}
	return fmt.Errorf("publish %s: %w", spec, err)
}

func (p *publisher) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.carry(c)
	}
}

// carry joins one host connection to the container's port.
func (p *publisher) carry(c net.Conn) {
	defer p.wg.Done()
	if !p.track(c) {
		c.Close()
		return
	}
	defer p.untrack(c)
	g, err := p.sw.dialGuest(p.ctx, p.ip, p.spec.ContainerPort)
	if err != nil {
		p.log.Debug("published port: dial container", "port", p.spec.String(), "err", err)
		c.Close()
		return
	}
	if !p.track(g) {
		c.Close()
		g.Close()
		return
	}
	defer p.untrack(g)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go pipe(g, c)
	go pipe(c, g)
	<-done
	<-done
	c.Close()
	g.Close()
}

func (p *publisher) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *publisher) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// close stops the listener and ends every connection through it.
func (p *publisher) close() {
	p.mu.Lock()
	p.cancel()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
