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
