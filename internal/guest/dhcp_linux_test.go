package guest

import (
	"context"
	"errors"
	"log"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/testenv"
)

// dhcpServer is a real DHCPv4 server (insomniacslk's server4) on one end
// of a veth pair; the guest's client runs on the other end. answer edits
// each reply; it counts what it saw.
type dhcpServer struct {
	mu        sync.Mutex
	discovers int
	requests  int
	hostname  string
	answer    func(req, resp *dhcpv4.DHCPv4)
}

func (d *dhcpServer) handle(conn net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var typ dhcpv4.MessageType
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		d.discovers++
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		d.requests++
		typ = dhcpv4.MessageTypeAck
	default:
		return
	}
	d.hostname = m.HostName()
	resp, err := dhcpv4.NewReplyFromRequest(m,
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(net.IPv4(10, 77, 0, 50)),
		dhcpv4.WithServerIP(net.IPv4(10, 77, 0, 1)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 1))),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(10, 77, 0, 1))),
		dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 77, 0, 1), net.IPv4(10, 77, 0, 2))),
		dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x05, 0x78}), // 1400
		dhcpv4.WithLeaseTime(3600),
	)
	if err != nil {
		return
	}
	if d.answer != nil {
		d.answer(m, resp)
	}
	conn.WriteTo(resp.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
}

func (d *dhcpServer) counts() (discovers, requests int, hostname string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.discovers, d.requests, d.hostname
}

// inDHCPNetns runs f on a thread of its own in a new network namespace
// with a veth pair: "eth0" (the guest's NIC, no address) and "srv0"
// (10.77.0.1/24), with d serving DHCP on srv0 when d is set. The thread
// is never returned to the runtime, so no other goroutine runs in it.
func inDHCPNetns(t *testing.T, d *dhcpServer, f func()) {
	t.Helper()
	testenv.RequireRoot(t, "creates a network namespace and a veth pair for a real DHCP exchange")
	done := make(chan struct{})
	var fail error
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		ns, err := netns.New()
		if err != nil {
			fail = err
			return
		}
		defer ns.Close()
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "srv0"}
		if err := netlink.LinkAdd(veth); err != nil {
			fail = err
			return
		}
		srv, _ := netlink.LinkByName("srv0")
		addr, _ := netlink.ParseAddr("10.77.0.1/24")
		if err := netlink.AddrAdd(srv, addr); err != nil {
			fail = err
			return
		}
		if err := netlink.LinkSetUp(srv); err != nil {
			fail = err
			return
		}
		if d != nil {
			s, err := server4.NewServer("srv0", &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, d.handle)
			if err != nil {
				fail = err
				return
			}
			go s.Serve()
			defer s.Close()
		}
		f()
	}()
	<-done
	if fail != nil {
		t.Fatalf("set up the namespace: %v", fail)
	}
}

func newLeaseServer() *Server {
	return &Server{logger: log.New(log.Writer(), "guest: ", 0)}
}

// TestAcquireLease: a real DHCP exchange over a veth pair yields the
// server's address, router, DNS servers and MTU, and sends the hostname;
// the lease is renewed in the background.
func TestAcquireLease(t *testing.T) {
	d := &dhcpServer{answer: func(req, resp *dhcpv4.DHCPv4) {
		if req.MessageType() == dhcpv4.MessageTypeRequest {
			resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(2 * time.Second))
		}
	}}
	var lease *agentpb.Lease
	var err error
	var renewed int
	inDHCPNetns(t, d, func() {
		s := newLeaseServer()
		s.renewFloor = 500 * time.Millisecond
		lease, err = s.acquireLease(context.Background(), &agentpb.LeaseRequest{Interface: "eth0", Hostname: "web-1", TimeoutMs: 8000})
		if err != nil {
			return
		}
		// The lease is 2 s: renewals every second.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, r, _ := d.counts(); r >= 3 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, renewed, _ = d.counts()
		s.mu.Lock()
		for _, cancel := range s.leases {
			cancel()
		}
		s.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("acquire lease: %v", err)
	}
	want := &agentpb.Lease{Interface: "eth0", Address: "10.77.0.50/24", Gateway: "10.77.0.1",
		DnsServers: []string{"10.77.0.1", "10.77.0.2"}, Mtu: 1400, LeaseSeconds: 2, Server: "10.77.0.1"}
	if lease.String() != want.String() {
		t.Errorf("lease:\n got %v\nwant %v", lease, want)
	}
	if _, _, h := d.counts(); h != "web-1" {
		t.Errorf("the server saw hostname %q; want web-1", h)
	}
	if renewed < 3 {
		t.Errorf("%d REQUESTs in 10 s (1 + renewals) with a 2 s lease; want at least 3", renewed)
	}
}

// TestAcquireLeaseFaults: no server answering is an Unavailable error
// within the timeout; an unusable answer and bad requests are refused
// with what was wrong.
func TestAcquireLeaseFaults(t *testing.T) {
	t.Run("no server", func(t *testing.T) {
		var err error
		var took time.Duration
		inDHCPNetns(t, nil, func() {
			start := time.Now()
			_, err = newLeaseServer().acquireLease(context.Background(), &agentpb.LeaseRequest{Interface: "eth0", TimeoutMs: 3000})
			took = time.Since(start)
		})
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "no DHCP server answered") {
			t.Fatalf("no server: %v; want Unavailable naming the missing server", err)
		}
		if took > 6*time.Second {
			t.Fatalf("no server: gave up after %s; want about the 3 s asked for", took)
		}
	})
	t.Run("router outside the subnet", func(t *testing.T) {
		d := &dhcpServer{answer: func(_, resp *dhcpv4.DHCPv4) {
			resp.UpdateOption(dhcpv4.OptRouter(net.IPv4(192, 0, 2, 1)))
		}}
		var err error
		inDHCPNetns(t, d, func() {
			_, err = newLeaseServer().acquireLease(context.Background(), &agentpb.LeaseRequest{Interface: "eth0", TimeoutMs: 5000})
		})
		if err == nil || !strings.Contains(err.Error(), "unusable: router 192.0.2.1 outside 10.77.0.50/24") {
			t.Fatalf("router outside: %v", err)
		}
	})
	t.Run("loopback address", func(t *testing.T) {
		d := &dhcpServer{answer: func(_, resp *dhcpv4.DHCPv4) { resp.YourIPAddr = net.IPv4(127, 0, 0, 9) }}
		var err error
		inDHCPNetns(t, d, func() {
			_, err = newLeaseServer().acquireLease(context.Background(), &agentpb.LeaseRequest{Interface: "eth0", TimeoutMs: 5000})
		})
		if err == nil || !strings.Contains(err.Error(), "unusable: address 127.0.0.9") {
			t.Fatalf("loopback address: %v", err)
		}
	})
	for _, r := range []*agentpb.LeaseRequest{{TimeoutMs: 61_000}, {Hostname: "a b"}, {Interface: "nope0"}} {
		if _, err := newLeaseServer().acquireLease(context.Background(), r); err == nil {
			t.Errorf("acquire lease %v: no error", r)
		}
	}
}
