package network

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// HostNames are the names at which containers reach the host: each
// network's resolver answers them with the network's host alias (its
// last host address, which reaches the host's loopback when
// Config.HostLoopback is on).
var HostNames = []string{"host.berth.internal", "host.docker.internal"}

// upstreamTimeout bounds one forwarded query.
const upstreamTimeout = 5 * time.Second

// Endpoint is a running container's place on a network as its names
// resolve there.
type Endpoint struct {
	// ContainerID is the container's full ID; its 12-digit prefix
	// resolves, as in Docker.
	ContainerID string
	// Name is the container's name (without Docker's leading slash).
	Name string
	// Aliases are its other names on this network (--network-alias,
	// compose's service name).
	Aliases []string
	// Address is its address on the network.
	Address netip.Addr
	// DNS are the upstream servers the container asked for (--dns): its
	// queries for names outside the network go there instead of to the
	// host's resolvers.
	DNS []netip.Addr
}

// names answers "who is this name" for one network: a name resolves
// while a container that bears it runs on the network, and no longer
// once it stops, is renamed or removed. It is safe for concurrent use.
type names struct {
	mu  sync.RWMutex
	eps map[string]Endpoint // container ID → endpoint
}

func newNames() *names { return &names{eps: map[string]Endpoint{}} }

func (n *names) add(ep Endpoint) {
	n.mu.Lock()
	n.eps[ep.ContainerID] = ep
	n.mu.Unlock()
}

func (n *names) remove(id string) {
	n.mu.Lock()
	delete(n.eps, id)
	n.mu.Unlock()
}

// rename changes container id's name; false when it is not here.
func (n *names) rename(id, name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	ep, ok := n.eps[id]
	if ok {
		ep.Name = name
		n.eps[id] = ep
	}
	return ok
}

// list returns the endpoints, by container ID.
func (n *names) list() map[string]Endpoint {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make(map[string]Endpoint, len(n.eps))
	for id, ep := range n.eps {
		out[id] = ep
	}
	return out
}

// lookup returns the addresses name (lower case, no trailing dot)
// resolves to: every container whose name, alias or 12-digit ID prefix
// it is (a full ID is longer than a DNS label may be), sorted.
func (n *names) lookup(name string) []netip.Addr {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var out []netip.Addr
	for id, ep := range n.eps {
		match := strings.EqualFold(ep.Name, name) || (len(name) == 12 && strings.HasPrefix(id, name))
		for _, a := range ep.Aliases {
			match = match || strings.EqualFold(a, name)
		}
		if match && !slices.Contains(out, ep.Address) {
			out = append(out, ep.Address)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// reverse returns the name of the container at ip.
func (n *names) reverse(ip netip.Addr) (string, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	for _, ep := range n.eps {
		if ep.Address == ip {
			return ep.Name, true
		}
	}
	return "", false
}

// upstreams are the --dns servers of the container at ip, as host:port;
// loopback ones are left out (a container's 127.0.0.1 is not the
// host's, and the host's loopback is not the container's to reach).
func (n *names) upstreams(ip netip.Addr) []string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var out []string
	for _, ep := range n.eps {
		if ep.Address != ip {
			continue
		}
		for _, d := range ep.DNS {
			if !d.IsLoopback() && !d.IsUnspecified() {
				out = append(out, netip.AddrPortFrom(d, 53).String())
			}
		}
	}
	return out
}

// resolver is one network's DNS server, at its gateway: it answers the
// names of the network's running containers, their aliases and the
// host's names from the engine's own table (so a change is seen by the
// next query), and forwards every other query, as it came, to the
// container's --dns servers or else the host's resolvers. Only the
// network's own containers reach it: it listens on the network's
// gateway, inside the network's own user-space stack.
type resolver struct {
	names     *names
	subnet    netip.Prefix
	hostAlias netip.Addr
	// hostResolvers are the host's DNS servers (host:port).
	hostResolvers []string
	// internal: the network has no outbound access; nothing is
	// forwarded (names outside it are REFUSED).
	internal bool
	log      *slog.Logger
}

// hostResolvers reads the host's DNS servers from path (resolv.conf).
func hostResolvers(path string) []string {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cfg.Port))
	}
	return out
}

// ServeDNS answers one query.
func (r *resolver) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	tcp := isTCP(w)
	if resp := r.answer(q, remoteAddr(w), tcp); resp != nil {
		if !tcp {
			// What fits the client's UDP size (512 bytes without EDNS),
			// marked truncated so that it asks again over TCP.
			size := dns.MinMsgSize
			if o := q.IsEdns0(); o != nil {
				size = int(o.UDPSize())
			}
			resp.Truncate(size)
		}
		if err := w.WriteMsg(resp); err != nil {
			r.log.Debug("dns: reply", "err", err)
		}
	}
}

// answer is q's reply for a client at src.
func (r *resolver) answer(q *dns.Msg, src netip.Addr, tcp bool) *dns.Msg {
	if len(q.Question) != 1 || q.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeFormatError)
		return m
	}
	qs := q.Question[0]
	name := strings.ToLower(strings.TrimSuffix(qs.Name, "."))
	if addrs := r.local(name); len(addrs) > 0 {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative, m.RecursionAvailable = true, true
		if qs.Qtype == dns.TypeA || qs.Qtype == dns.TypeANY {
			for _, a := range addrs {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qs.Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: a.AsSlice()})
			}
		}
		// Other types of a known name: no records (NOERROR, empty), so
		// a resolver asking A and AAAA takes the A answer.
		return m
	}
	if ip, ok := reverseName(name); ok && r.subnet.Contains(ip) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative, m.RecursionAvailable = true, true
		host, found := r.names.reverse(ip)
		switch {
		case found && qs.Qtype == dns.TypePTR:
			m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: qs.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: dns.Fqdn(host)})
		case !found:
			m.Rcode = dns.RcodeNameError
		}
		return m
	}
	if r.internal {
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeRefused)
		return m
	}
	return r.forward(q, src, tcp)
}

// local are the addresses name has on this network.
func (r *resolver) local(name string) []netip.Addr {
	for _, h := range HostNames {
		if name == h {
			return []netip.Addr{r.hostAlias}
		}
	}
	return r.names.lookup(name)
}

// forward asks the client's upstreams (its --dns servers, else the
// host's resolvers) in turn and relays the first answer; SERVFAIL when
// none answers.
func (r *resolver) forward(q *dns.Msg, src netip.Addr, tcp bool) *dns.Msg {
	servers := r.names.upstreams(src)
	if len(servers) == 0 {
		servers = r.hostResolvers
	}
	proto := "udp"
	if tcp {
		proto = "tcp"
	}
	ctx, cancel := context.WithTimeout(context.Background(), upstreamTimeout)
	defer cancel()
	for _, s := range servers {
		c := &dns.Client{Net: proto, Timeout: upstreamTimeout}
		resp, _, err := c.ExchangeContext(ctx, q, s)
		if err == nil {
			// A truncated answer is relayed as it is: the client asks
			// again over TCP, which is forwarded over TCP.
			resp.Id = q.Id
			return resp
		}
		r.log.Debug("dns: upstream", "server", s, "name", q.Question[0].Name, "err", err)
	}
	m := new(dns.Msg)
	m.SetRcode(q, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

// reverseName parses a.b.c.d.in-addr.arpa.
func reverseName(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa")
	if !ok {
		return netip.Addr{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	slices.Reverse(parts)
	ip, err := netip.ParseAddr(strings.Join(parts, "."))
	return ip, err == nil && ip.Is4()
}

func remoteAddr(w dns.ResponseWriter) netip.Addr {
	if w.RemoteAddr() == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(w.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}
