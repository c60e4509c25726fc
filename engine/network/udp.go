package network

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// udpFlowIdle is how long a UDP flow (one host peer's datagrams to a
// published port and the container's answers) lasts without a datagram
// either way: Docker's userland proxy's 90 s.
const udpFlowIdle = 90 * time.Second

// maxDatagram is the largest UDP payload over IPv4.
const maxDatagram = 65507

// udpPublisher is one published UDP port: a socket on the host whose
// datagrams it sends to the container's port through the switch, from
// one gateway socket per host peer (a flow), so that the container's
// answers to that socket go back to that peer.
type udpPublisher struct {
	spec PortSpec
	pc   net.PacketConn
	fab  fabric
	ip   netip.Addr
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	flows  map[netip.AddrPort]net.Conn
}

// publishUDP binds spec's host side and starts serving it.
func publishUDP(fab fabric, ip netip.Addr, spec PortSpec, log *slog.Logger) (*udpPublisher, error) {
	pc, err := net.ListenPacket("udp", spec.listenAddr())
	if err != nil {
		return nil, bindError(spec, err)
	}
	if !spec.HostIP.IsValid() {
		spec.HostIP = DefaultHostIP
	}
	spec.HostPort = uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	ctx, cancel := context.WithCancel(context.Background())
	p := &udpPublisher{spec: spec, pc: pc, fab: fab, ip: ip, log: log, ctx: ctx, cancel: cancel, flows: map[netip.AddrPort]net.Conn{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *udpPublisher) bound() PortSpec { return p.spec }

// serve reads the host's datagrams and sends each on its peer's flow.
func (p *udpPublisher) serve() {
	defer p.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			p.log.Debug("published port: read", "port", p.spec.String(), "err", err)
			continue
		}
		peer := from.(*net.UDPAddr).AddrPort()
		flow, err := p.flow(peer)
		if err != nil {
			p.log.Debug("published port: open flow to container", "port", p.spec.String(), "peer", peer, "err", err)
			continue
		}
		_ = flow.SetReadDeadline(time.Now().Add(udpFlowIdle))
		if _, err := flow.Write(buf[:n]); err != nil {
			p.log.Debug("published port: send to container", "port", p.spec.String(), "peer", peer, "err", err)
		}
	}
}

// flow is peer's socket on the gateway, opened (with its reply loop)
// on peer's first datagram.
func (p *udpPublisher) flow(peer netip.AddrPort) (net.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.flows[peer]; ok {
		return c, nil
	}
	if p.ctx.Err() != nil {
		return nil, net.ErrClosed
	}
	c, err := p.fab.dialUDP(p.ip, p.spec.ContainerPort)
	if err != nil {
		return nil, err
	}
	p.flows[peer] = c
	p.wg.Add(1)
	go p.replies(peer, c)
	return c, nil
}

// replies sends the container's datagrams on c back to peer until the
// flow is idle for udpFlowIdle or the port is withdrawn.
func (p *udpPublisher) replies(peer netip.AddrPort, c net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		if p.flows[peer] == c {
			delete(p.flows, peer)
		}
		p.mu.Unlock()
		c.Close()
	}()
	to := net.UDPAddrFromAddrPort(peer)
	buf := make([]byte, maxDatagram)
	_ = c.SetReadDeadline(time.Now().Add(udpFlowIdle))
	for {
		n, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if p.ctx.Err() != nil || errors.Is(err, io.EOF) || (errors.As(err, &ne) && ne.Timeout()) {
				return
			}
			// An ICMP port unreachable for an earlier datagram
			// (nothing listens on the container's port yet): the
			// flow stays until it is idle.
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(udpFlowIdle))
		if _, err := p.pc.WriteTo(buf[:n], to); err != nil && p.ctx.Err() == nil {
			p.log.Debug("published port: send to host peer", "port", p.spec.String(), "peer", peer, "err", err)
		}
	}
}

// close unbinds the host socket, ends every flow and waits for their
// goroutines.
func (p *udpPublisher) close() {
	p.mu.Lock()
	p.cancel()
	for _, c := range p.flows {
		c.Close()
	}
	p.mu.Unlock()
	p.pc.Close()
	p.wg.Wait()
}
