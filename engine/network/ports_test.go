package network

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
	mobynetwork "github.com/moby/moby/api/types/network"
)

func TestParsePortSpec(t *testing.T) {
	v6 := netip.MustParseAddr("::1")
	any4 := netip.MustParseAddr("0.0.0.0")
	for _, c := range []struct {
		in   string
		want PortSpec
		err  string
	}{
		{"8080:80", PortSpec{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}, ""},
		{"8080:80/tcp", PortSpec{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}, ""},
		{"80", PortSpec{ContainerPort: 80, Proto: "tcp"}, ""},
		{":80", PortSpec{ContainerPort: 80, Proto: "tcp"}, ""},
		{"0.0.0.0:8080:80", PortSpec{HostIP: any4, HostPort: 8080, ContainerPort: 80, Proto: "tcp"}, ""},
		{"0.0.0.0::80", PortSpec{HostIP: any4, ContainerPort: 80, Proto: "tcp"}, ""},
		{"[::1]:8080:80", PortSpec{HostIP: v6, HostPort: 8080, ContainerPort: 80, Proto: "tcp"}, ""},
		{"5353:53/udp", PortSpec{HostPort: 5353, ContainerPort: 53, Proto: "udp"}, ""},
		{"127.0.0.1:8080:80/udp", PortSpec{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, ContainerPort: 80, Proto: "udp"}, ""},
		{"53/udp", PortSpec{ContainerPort: 53, Proto: "udp"}, ""},
		{"8080:80/sctp", PortSpec{}, "sctp ports are not published"},
		{"8080:80/", PortSpec{}, "unknown protocol"},
		{"8080:80/xyz", PortSpec{}, "unknown protocol"},
		{"8000-8010:80", PortSpec{}, "port ranges are not published yet"},
		{"::1:8080:80", PortSpec{}, "too many colons"},
		{"[::1]8080:80", PortSpec{}, "in brackets"},
		{"host:8080:80", PortSpec{}, "is not an IP address"},
		{"70000:80", PortSpec{}, "not a number from 0 to 65535"},
		{"8080:0", PortSpec{}, "container port 0"},
		{"8080:", PortSpec{}, "container port is missing"},
		{"", PortSpec{}, "container port is missing"},
	} {
		got, err := ParsePortSpec(c.in)
		if c.err != "" {
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), `"`+c.in+`"`) {
				t.Errorf("ParsePortSpec(%q) = %v, want invalid argument naming it with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParsePortSpec(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	if s := (PortSpec{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}).String(); s != "127.0.0.1:8080->80/tcp" {
		t.Errorf("String of a spec without an address = %q, want the loopback default", s)
	}
}

func TestPortMapRoundTrip(t *testing.T) {
	p80, _ := mobynetwork.PortFrom(80, mobynetwork.TCP)
	p443, _ := mobynetwork.PortFrom(443, mobynetwork.TCP)
	pm := mobynetwork.PortMap{
		p443: {{HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: "8443"}},
		p80:  {{HostPort: "8080"}, {HostPort: ""}},
	}
	specs, err := FromPortMap(pm)
	if err != nil {
		t.Fatal(err)
	}
	want := []PortSpec{{ContainerPort: 80, Proto: "tcp"}, {HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		{HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 8443, ContainerPort: 443, Proto: "tcp"}}
	if len(specs) != len(want) {
		t.Fatalf("FromPortMap = %+v", specs)
	}
	for i := range want {
		if specs[i] != want[i] {
			t.Errorf("spec %d = %+v, want %+v", i, specs[i], want[i])
		}
	}
	back := ToPortMap(specs)
	if b := back[p80]; len(b) != 2 || b[0].HostIP != DefaultHostIP || b[1].HostPort != "8080" {
		t.Errorf("ToPortMap 80: %+v", b)
	}
	if b := back[p443]; len(b) != 1 || b[0].HostIP.String() != "0.0.0.0" || b[0].HostPort != "8443" {
		t.Errorf("ToPortMap 443: %+v", b)
	}
	if ToPortMap(nil) != nil {
		t.Error("ToPortMap(nil) is not nil")
	}

	// tcp and udp on one port number stay apart, tcp first.
	pUDP, _ := mobynetwork.PortFrom(80, mobynetwork.UDP)
	both, err := FromPortMap(mobynetwork.PortMap{pUDP: {{HostPort: "8080"}}, p80: {{HostPort: "8080"}}})
	if err != nil || len(both) != 2 || both[0].Proto != "tcp" || both[1].Proto != "udp" || both[1].HostPort != 8080 {
		t.Fatalf("FromPortMap of 80/tcp and 80/udp = %+v, %v", both, err)
	}
	if back := ToPortMap(both); len(back[p80]) != 1 || len(back[pUDP]) != 1 || back[pUDP][0].HostPort != "8080" {
		t.Errorf("ToPortMap of 80/tcp and 80/udp = %+v", back)
	}

	pSCTP, _ := mobynetwork.PortFrom(53, mobynetwork.SCTP)
	for _, bad := range []mobynetwork.PortMap{
		{pSCTP: {{HostPort: "53"}}},
		{p80: {{HostPort: "8000-8010"}}},
		{p80: {{HostPort: "x"}}},
	} {
		if _, err := FromPortMap(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("FromPortMap(%v) = %v, want invalid argument", bad, err)
		}
	}
}
