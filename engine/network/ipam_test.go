package network

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
)

func TestIPAM(t *testing.T) {
	path := filepath.Join(t.TempDir(), "default.json")
	subnet := netip.MustParsePrefix("192.168.127.0/29") // .1 gateway, .2-.6 hosts, .7 broadcast
	host := netip.MustParseAddr("192.168.127.4")
	a, err := OpenIPAM(path, subnet, host)
	if err != nil {
		t.Fatal(err)
	}
	if a.Gateway() != netip.MustParseAddr("192.168.127.1") {
		t.Errorf("gateway %s", a.Gateway())
	}
	lease := func(id string) netip.Addr {
		t.Helper()
		ip, err := a.Lease(id)
		if err != nil {
			t.Fatalf("lease %s: %v", id, err)
		}
		return ip
	}
	want := map[string]string{"a": "192.168.127.2", "b": "192.168.127.3", "c": "192.168.127.5", "d": "192.168.127.6"}
	for _, id := range []string{"a", "b", "c", "d"} {
		if got := lease(id); got.String() != want[id] {
			t.Errorf("lease %s = %s, want %s (gateway, reserved host address and broadcast skipped)", id, got, want[id])
		}
	}
	if got := lease("b"); got.String() != want["b"] {
		t.Errorf("a second lease of b = %s, want its own %s", got, want["b"])
	}
	if _, err := a.Lease("e"); !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "every address") {
		t.Errorf("lease from a full subnet: %v, want unavailable saying so", err)
	}
	if err := a.Release("b"); err != nil {
		t.Fatal(err)
	}
	if err := a.Release("never"); err != nil {
		t.Errorf("release of an id without a lease: %v", err)
	}
	if got := lease("e"); got.String() != "192.168.127.3" {
		t.Errorf("lease after a release = %s, want the freed 192.168.127.3", got)
	}

	// The table survives a restart; Keep drops the leases of containers
	// that are gone.
	b, err := OpenIPAM(path, subnet, host)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Leases(); len(got) != 4 || got["e"].String() != "192.168.127.3" || got["a"].String() != "192.168.127.2" {
		t.Errorf("leases after reopening: %v", got)
	}
	if err := b.Keep(func(id string) bool { return id != "a" && id != "c" }); err != nil {
		t.Fatal(err)
	}
	c, err := OpenIPAM(path, subnet, host)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Leases(); len(got) != 2 || got["d"].String() != "192.168.127.6" {
		t.Errorf("leases after Keep and reopening: %v", got)
	}

	// A table of another subnet, a broken file, a subnet too small.
	if _, err := OpenIPAM(path, netip.MustParsePrefix("10.9.0.0/24")); err == nil || !strings.Contains(err.Error(), "remove the file") {
		t.Errorf("table of another subnet: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenIPAM(bad, subnet); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("broken table: %v, want an error naming it", err)
	}
	for _, p := range []string{"192.168.1.0/31", "fd00::/64"} {
		if _, err := OpenIPAM(filepath.Join(t.TempDir(), "x.json"), netip.MustParsePrefix(p)); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("subnet %s: %v, want invalid argument", p, err)
		}
	}
}

func TestIPAMConcurrentLeases(t *testing.T) {
	a, err := OpenIPAM(filepath.Join(t.TempDir(), "n.json"), netip.MustParsePrefix("192.168.127.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ips := make([]netip.Addr, 40)
	for i := range ips {
		wg.Go(func() {
			ip, err := a.Lease(string(rune('A' + i)))
			if err != nil {
				t.Error(err)
			}
			ips[i] = ip
		})
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for _, ip := range ips {
		if seen[ip] {
			t.Fatalf("address %s leased twice", ip)
		}
		seen[ip] = true
	}
}

// TestIPAMLeaseAddr: --ip gives a container the address it asks for,
// replacing its lease; an address another holds, the gateway, the
// reserved host alias, the network or broadcast address and one outside
// the subnet are refused, naming why.
func TestIPAMLeaseAddr(t *testing.T) {
	subnet := netip.MustParsePrefix("10.9.0.0/29") // .1 gateway, .6 host alias, .7 broadcast
	a, err := OpenIPAM(filepath.Join(t.TempDir(), "n.json"), subnet, netip.MustParseAddr("10.9.0.6"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lease("a"); err != nil {
		t.Fatal(err)
	}
	if err := a.LeaseAddr("a", netip.MustParseAddr("10.9.0.5")); err != nil {
		t.Fatal(err)
	}
	if got := a.Leases()["a"]; got != netip.MustParseAddr("10.9.0.5") {
		t.Errorf("a's lease after --ip: %s", got)
	}
	if ip, _ := a.Lease("b"); ip != netip.MustParseAddr("10.9.0.2") {
		t.Errorf("b's lease: %s, want .2 (a gave it back)", ip)
	}
	for ip, want := range map[string]string{
		"10.9.0.5": "Address already in use: 10.9.0.5 is container a's",
		"10.9.0.1": "it is the network's gateway",
		"10.9.0.6": "host alias",
		"10.9.0.0": "not a host address of the network's subnet 10.9.0.0/29",
		"10.9.0.7": "not a host address",
		"10.9.1.3": "not a host address",
	} {
		if err := a.LeaseAddr("b", netip.MustParseAddr(ip)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--ip %s: %v, want %q", ip, err, want)
		}
	}
	if err := a.LeaseAddr("b", netip.MustParseAddr("10.9.0.5")); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("an address in use: %v, want a conflict", err)
	}
	b, err := OpenIPAM(filepath.Join(filepath.Dir(a.path), "n.json"), subnet, netip.MustParseAddr("10.9.0.6"))
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Leases()["a"]; got != netip.MustParseAddr("10.9.0.5") {
		t.Errorf("a's --ip lease after reopening: %s", got)
	}
}
