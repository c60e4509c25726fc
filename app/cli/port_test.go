package cli

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
	mobynetwork "github.com/moby/moby/api/types/network"
)

func TestPortLines(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	v6 := netip.MustParseAddr("::1")
	pm := mobynetwork.PortMap{
		mobynetwork.MustParsePort("80/udp"):  {{HostIP: lo, HostPort: "8080"}},
		mobynetwork.MustParsePort("80/tcp"):  {{HostIP: lo, HostPort: "8080"}, {HostIP: v6, HostPort: "8081"}},
		mobynetwork.MustParsePort("443/tcp"): nil, // exposed, not published
		mobynetwork.MustParsePort("53/udp"):  {{HostIP: lo, HostPort: "5353"}},
	}
	all, err := portLines(pm, "web", "")
	want := []string{"53/udp -> 127.0.0.1:5353", "80/tcp -> 127.0.0.1:8080", "80/tcp -> [::1]:8081", "80/udp -> 127.0.0.1:8080"}
	if err != nil || !slices.Equal(all, want) {
		t.Errorf("portLines(all) = %q, %v; want %q", all, err, want)
	}
	for filter, want := range map[string][]string{
		"80":     {"127.0.0.1:8080", "[::1]:8081"},
		"80/tcp": {"127.0.0.1:8080", "[::1]:8081"},
		"80/udp": {"127.0.0.1:8080"},
		"53/udp": {"127.0.0.1:5353"},
	} {
		if got, err := portLines(pm, "web", filter); err != nil || !slices.Equal(got, want) {
			t.Errorf("portLines(%s) = %q, %v; want %q", filter, got, err, want)
		}
	}
	for filter, msg := range map[string]string{
		"443": "no public port '443/tcp' published for web",
		"53":  "no public port '53/tcp' published for web",
	} {
		if _, err := portLines(pm, "web", filter); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), msg) {
			t.Errorf("portLines(%s) = %v, want not found %q", filter, err, msg)
		}
	}
	for _, bad := range []string{"x", "0", "70000"} {
		if _, err := portLines(pm, "web", bad); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `invalid port "`+bad+`"`) {
			t.Errorf("portLines(%q) = %v, want invalid argument naming it", bad, err)
		}
	}
}

func TestExposedPorts(t *testing.T) {
	set, err := exposedPorts([]string{"80", "53/udp", "8000-8002"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for p := range set {
		got = append(got, p.String())
	}
	slices.Sort(got)
	if want := []string{"53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp"}; !slices.Equal(got, want) {
		t.Errorf("exposedPorts = %q, want %q", got, want)
	}
	for _, bad := range []string{"x", "0", "9-8", "80/sctp", ""} {
		if _, err := exposedPorts([]string{bad}); err == nil || !strings.Contains(err.Error(), `invalid --expose "`+bad+`"`) {
			t.Errorf("exposedPorts(%q) = %v, want an error naming it", bad, err)
		}
	}
	if set, err := exposedPorts(nil); set != nil || err != nil {
		t.Errorf("exposedPorts(nil) = %v, %v", set, err)
	}
}
