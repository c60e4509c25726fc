package container

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/vmm"
)

// TestNetworkRequest: a backend's address plan reaches the agent as is;
// no plan is an unconfigured NIC.
func TestNetworkRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *vmm.GuestNetwork
		want *agentpb.ConfigureNetworkRequest
	}{
		{"none", nil, &agentpb.ConfigureNetworkRequest{}},
		{"qemu user-mode", &vmm.GuestNetwork{
			Address: netip.MustParsePrefix("10.0.2.15/24"), Gateway: netip.MustParseAddr("10.0.2.2"),
			MTU: 1500, DNS: []netip.Addr{netip.MustParseAddr("10.0.2.3"), netip.MustParseAddr("fd00::3")},
		}, &agentpb.ConfigureNetworkRequest{
			Address: "10.0.2.15/24", Gateway: "10.0.2.2", Mtu: 1500, DnsServers: []string{"10.0.2.3", "fd00::3"},
		}},
		{"address only", &vmm.GuestNetwork{Address: netip.MustParsePrefix("192.168.64.2/24")},
			&agentpb.ConfigureNetworkRequest{Address: "192.168.64.2/24"}},
	} {
		got := networkRequest(tc.in)
		if !reflect.DeepEqual(got.Address, tc.want.Address) || got.Gateway != tc.want.Gateway || got.Mtu != tc.want.Mtu || !reflect.DeepEqual(got.DnsServers, tc.want.DnsServers) {
			t.Errorf("%s: networkRequest = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
