package network

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
)

// TestPrivateNetwork: a private network's address plan (the VM at the
// gateway's next address, the gateway its route and DNS server), the
// subnets refused, a port served on its gateway (not 53, not twice),
// closed with the network; none once the networks are closed. It is
// not one of the Manager's networks.
func TestPrivateNetwork(t *testing.T) {
	m, err := New(Config{Dir: t.TempDir(), Resolvers: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"192.168.126.1/29", "10.0.0.0/30", "10.0.0.0/7", "fd00::/64"} {
		if _, err := m.OpenPrivate(PrivateOptions{Name: "x", Subnet: netip.MustParsePrefix(bad)}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("OpenPrivate on %s: %v; want invalid argument", bad, err)
		}
	}
	if _, err := m.OpenPrivate(PrivateOptions{Name: "x"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("OpenPrivate without a subnet: %v", err)
	}
	p, err := m.OpenPrivate(PrivateOptions{Name: "berth-builder", Subnet: netip.MustParsePrefix("192.168.126.0/29")})
	if err != nil {
		t.Fatal(err)
	}
	n := p.Network()
	if n.Link == nil || n.Plan == nil || n.Plan.Address.String() != "192.168.126.2/29" || n.Plan.Gateway.String() != "192.168.126.1" ||
		len(n.Plan.DNS) != 1 || n.Plan.DNS[0] != n.Plan.Gateway || n.Plan.MTU != mtu {
		t.Errorf("the private network's NIC: %+v plan %+v", n, n.Plan)
	}
	if len(m.List()) != 1 {
		t.Errorf("networks listed: %+v; want the default one only", m.List())
	}
	if _, err := p.Listen(53); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Listen(53): %v", err)
	}
	ln, err := p.Listen(5000)
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr().String() != "192.168.126.1:5000" {
		t.Errorf("listener at %s", ln.Addr())
	}
	if l2, err := p.Listen(5000); err == nil {
		l2.Close()
		t.Errorf("a second Listen on port 5000 succeeded")
	}
	accepted := make(chan error, 1)
	go func() { _, err := ln.Accept(); accepted <- err }()
	p.Close()
	if err := <-accepted; err == nil {
		t.Errorf("Accept after Close: no error")
	}
	p.Close() // twice: nothing
	m.Close()
	if _, err := m.OpenPrivate(PrivateOptions{Name: "y", Subnet: netip.MustParsePrefix("192.168.126.0/29")}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("OpenPrivate after Close: %v", err)
	}
}
