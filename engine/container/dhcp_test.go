package container

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/vmm"
)

// TestDHCPNetwork: on a backend whose guest gets its address by DHCP
// (vz's NAT), the start asks the guest for a lease, configures the NIC
// with it and records it; a lease that does not add up, or no DHCP
// answer, fails the start with the reason and leaves no VM running. (The
// guest's real DHCP exchange is internal/guest's TestAcquireLease.)
func TestDHCPNetwork(t *testing.T) {
	ctx := context.Background()
	l := newLifecycle(t)
	lease := &agentpb.Lease{Interface: "eth0", Address: "192.168.64.7/24", Gateway: "192.168.64.1",
		DnsServers: []string{"192.168.64.1"}, Mtu: 1500, LeaseSeconds: 86400, Server: "192.168.64.1"}
	var leaseErr error
	l.vms.guestNet = &vmm.GuestNetwork{DHCP: true}
	l.vms.lease = func() (*agentpb.Lease, error) { return lease, leaseErr }

	c := l.add(t, "web", []string{"sleep"}, nil)
	if err := l.m.Start(ctx, c.ID()); err != nil {
		t.Fatalf("start: %v", err)
	}
	g := l.vms.last().guest
	g.mu.Lock()
	nr := g.network
	g.mu.Unlock()
	if nr.Address != "192.168.64.7/24" || nr.Gateway != "192.168.64.1" || nr.Mtu != 1500 || strings.Join(nr.DnsServers, ",") != "192.168.64.1" {
		t.Errorf("ConfigureNetwork after the lease: %v", nr)
	}
	if st := c.Snapshot().State; st.IPPrefixLen != 24 || st.Gateway.String() != "192.168.64.1" {
		t.Errorf("state: prefix %d gateway %v; want the lease's", st.IPPrefixLen, st.Gateway)
	}
	if err := l.m.Kill(ctx, c.ID(), "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	l.waitExit(t, c)

	for _, tc := range []struct {
		name  string
		lease *agentpb.Lease
		err   error
		want  string
	}{
		{"gateway outside", &agentpb.Lease{Address: "192.168.64.7/24", Gateway: "10.0.0.1"}, nil, `reported gateway "10.0.0.1", which is not valid`},
		{"address not IPv4", &agentpb.Lease{Address: "fe80::1/64"}, nil, `reported address "fe80::1/64"`},
		{"bad MTU", &agentpb.Lease{Address: "192.168.64.7/24", Mtu: 70000}, nil, `reported MTU "70000"`},
		{"no answer", nil, status.Errorf(codes.Unavailable, "acquire lease on eth0: no DHCP server answered within 10s"), "get the VM's address from the network's DHCP server"},
	} {
		lease, leaseErr = tc.lease, tc.err
		before := l.vms.launched()
		err := l.m.Start(ctx, c.ID())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: start: %v; want an error with %q", tc.name, err, tc.want)
			continue
		}
		if l.vms.launched() != before+1 {
			t.Fatalf("%s: %d VMs launched", tc.name, l.vms.launched()-before)
		}
		select {
		case <-l.vms.last().Done():
		default:
			t.Errorf("%s: the VM of the failed start still runs", tc.name)
		}
	}
}
