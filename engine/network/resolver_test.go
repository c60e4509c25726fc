package network

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// serveDNS serves h on a loopback UDP port and returns its address.
func serveDNS(t *testing.T, h dns.Handler) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

// upstream is a DNS server that answers name with ip and everything
// else with NXDOMAIN: the host's resolver, or a --dns server.
func upstream(t *testing.T, name string, ip netip.Addr) string {
	return serveDNS(t, dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Name == dns.Fqdn(name) && q.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: ip.AsSlice()})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	}))
}

// lookup asks server for name's A records over UDP: the addresses and
// the response code.
func lookup(t *testing.T, server, name string, qtype uint16) ([]netip.Addr, int) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Timeout: 5 * time.Second}
	resp, _, err := c.ExchangeContext(context.Background(), q, server)
	if err != nil {
		t.Fatalf("ask %s for %s: %v", server, name, err)
	}
	var out []netip.Addr
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A)
			out = append(out, ip.Unmap())
		}
	}
	return out, resp.Rcode
}

// TestResolverScopesNamesPerNetwork runs two networks' resolvers (as
// their switches make them, over real UDP): each answers its own
// running containers by name (any case), alias, short ID, and the host
// names; a name of the other network is not answered locally but
// forwarded (the host's resolver says NXDOMAIN); a name outside Berth
// reaches the host's resolver; a rename and a stop are seen by the next
// query; PTR answers a container's address.
func TestResolverScopesNamesPerNetwork(t *testing.T) {
	hostDNS := upstream(t, "example.test", netip.MustParseAddr("203.0.113.7"))
	m, err := New(Config{Dir: t.TempDir(), Resolvers: []string{hostDNS}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Create(CreateOptions{Name: "back"}); err != nil {
		t.Fatal(err)
	}
	const webID = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	web, err := m.Attach(context.Background(), AttachRequest{ContainerID: webID, Name: "web", Aliases: []string{"frontend", "shared"}})
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()
	api, err := m.Attach(context.Background(), AttachRequest{ContainerID: "bbbbbbbbbbbb", Name: "api", Aliases: []string{"shared"}})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	db, err := m.Attach(context.Background(), AttachRequest{ContainerID: "cccccccccccc", Name: "db", Network: "back"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	m.mu.Lock()
	def, _ := m.findLocked("")
	back, _ := m.findLocked("back")
	defServer, backServer := serveDNS(t, def.res), serveDNS(t, back.res)
	m.mu.Unlock()

	want := func(server, name string, rcode int, addrs ...netip.Addr) {
		t.Helper()
		got, code := lookup(t, server, name, dns.TypeA)
		if code != rcode || !slices.Equal(got, addrs) {
			t.Errorf("%s on %s: %v %s, want %v %s", name, server, got, dns.RcodeToString[code], addrs, dns.RcodeToString[rcode])
		}
	}
	ok, nx := dns.RcodeSuccess, dns.RcodeNameError
	webIP, apiIP, dbIP := web.Address(), api.Address(), db.Address()
	if !DefaultSubnet.Contains(webIP) || DefaultSubnet.Contains(dbIP) {
		t.Fatalf("addresses: web %s (default network), db %s (back)", webIP, dbIP)
	}
	want(defServer, "web", ok, webIP)
	want(defServer, "WEB.", ok, webIP)
	want(defServer, "frontend", ok, webIP)
	want(defServer, "aaaaaaaaaaaa", ok, webIP)
	want(defServer, "shared", ok, webIP, apiIP)
	want(defServer, "host.berth.internal", ok, netip.MustParseAddr("192.168.127.254"))
	want(defServer, "host.docker.internal", ok, netip.MustParseAddr("192.168.127.254"))
	want(defServer, "db", nx) // back's container: not on this network
	want(defServer, "example.test", ok, netip.MustParseAddr("203.0.113.7"))
	want(backServer, "db", ok, dbIP)
	want(backServer, "web", nx)
	want(backServer, "host.berth.internal", ok, lastHost(back.info.Subnet))

	// A known name has no AAAA records: an empty answer, not NXDOMAIN.
	if got, code := lookup(t, defServer, "web", dns.TypeAAAA); code != ok || len(got) != 0 {
		t.Errorf("AAAA web: %v %s, want an empty NOERROR", got, dns.RcodeToString[code])
	}
	// PTR for a container's address.
	rev, _ := dns.ReverseAddr(webIP.String())
	q := new(dns.Msg)
	q.SetQuestion(rev, dns.TypePTR)
	if resp, _, err := (&dns.Client{}).Exchange(q, defServer); err != nil || len(resp.Answer) != 1 || resp.Answer[0].(*dns.PTR).Ptr != "web." {
		t.Errorf("PTR %s: %v %v", rev, resp, err)
	}

	m.Rename(webID, "www")
	want(defServer, "www", ok, webIP)
	want(defServer, "web", nx)
	want(defServer, "frontend", ok, webIP)

	web.Close()
	want(defServer, "www", nx)
	want(defServer, "shared", ok, apiIP)
}

// TestResolverForwardsToContainerDNS: a container's --dns servers are
// its resolver's upstreams for names outside Berth; a loopback one is
// left out (the host's resolvers answer); nothing answering is SERVFAIL;
// an internal network's forwards nothing (REFUSED).
func TestResolverForwardsToContainerDNS(t *testing.T) {
	hostDNS := upstream(t, "example.test", netip.MustParseAddr("203.0.113.7"))
	ownDNS := upstream(t, "example.test", netip.MustParseAddr("198.51.100.9"))
	ownIP := netip.MustParseAddr("198.51.100.53")
	n := newNames()
	r := &resolver{names: n, subnet: DefaultSubnet, hostAlias: lastHost(DefaultSubnet), hostResolvers: []string{hostDNS}, log: discardLog()}
	withDNS, plain := netip.MustParseAddr("192.168.127.2"), netip.MustParseAddr("192.168.127.3")
	loopDNS := netip.MustParseAddr("192.168.127.4")
	n.add(Endpoint{ContainerID: "a", Name: "a", Address: withDNS, DNS: []netip.Addr{ownIP}})
	n.add(Endpoint{ContainerID: "b", Name: "b", Address: plain})
	n.add(Endpoint{ContainerID: "c", Name: "c", Address: loopDNS, DNS: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	// --dns servers are dialed on port 53, which this test's cannot
	// take: upstreams is checked for what it picks, and answer through
	// test servers put in the host resolvers' place.
	ask := func(src netip.Addr, servers []string) string {
		q := new(dns.Msg)
		q.SetQuestion("example.test.", dns.TypeA)
		saved := r.hostResolvers
		if servers != nil {
			r.hostResolvers = servers
		}
		defer func() { r.hostResolvers = saved }()
		resp := r.answer(q, src, false)
		if len(resp.Answer) != 1 {
			return dns.RcodeToString[resp.Rcode]
		}
		return resp.Answer[0].(*dns.A).A.String()
	}
	if got := ask(plain, nil); got != "203.0.113.7" {
		t.Errorf("no --dns: %s, want the host resolver's answer", got)
	}
	if got := ask(loopDNS, nil); got != "203.0.113.7" {
		t.Errorf("--dns 127.0.0.1: %s, want the host resolver's answer", got)
	}
	if got := n.upstreams(loopDNS); len(got) != 0 {
		t.Errorf("upstreams of a container with --dns 127.0.0.1: %v, want none", got)
	}
	if got := n.upstreams(withDNS); !slices.Equal(got, []string{netip.AddrPortFrom(ownIP, 53).String()}) {
		t.Errorf("upstreams of a container with --dns: %v", got)
	}
	if got := ask(plain, []string{ownDNS}); got != "198.51.100.9" {
		t.Errorf("through another upstream: %s", got)
	}
	dead, err := net.ListenPacket("udp", "127.0.0.1:0") // bound, never answers
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	if got := ask(plain, []string{dead.LocalAddr().String()}); got != "SERVFAIL" {
		t.Errorf("no upstream answering: %s, want SERVFAIL", got)
	}
	// An internal network's resolver forwards nothing, and still answers
	// its names.
	r.internal = true
	if got := ask(plain, nil); got != "REFUSED" {
		t.Errorf("on an internal network: %s, want REFUSED", got)
	}
	q := new(dns.Msg)
	q.SetQuestion("a.", dns.TypeA)
	if resp := r.answer(q, plain, false); len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != withDNS.String() {
		t.Errorf("a container's name on an internal network: %v", resp)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestResolverTruncatesOverUDP: an alias many containers share answers
// them all over TCP, and what fits over UDP, marked truncated.
func TestResolverTruncatesOverUDP(t *testing.T) {
	n := newNames()
	for i := range 60 {
		n.add(Endpoint{ContainerID: string(rune('a'+i%26)) + strings.Repeat("0", 11) + string(rune('a'+i/26)), Name: "c" + string(rune('a'+i)), Aliases: []string{"many"}, Address: netip.AddrFrom4([4]byte{192, 168, 127, byte(2 + i)})})
	}
	r := &resolver{names: n, subnet: DefaultSubnet, hostAlias: lastHost(DefaultSubnet), log: discardLog()}
	addr := serveDNS(t, r)
	q := new(dns.Msg)
	q.SetQuestion("many.", dns.TypeA)
	resp, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(q, addr)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Truncated || len(resp.Answer) >= 60 {
		t.Fatalf("over UDP: truncated %v, %d answers", resp.Truncated, len(resp.Answer))
	}
	if got := r.answer(q, netip.Addr{}, true); len(got.Answer) != 60 {
		t.Errorf("over TCP: %d answers, want 60", len(got.Answer))
	}
}
