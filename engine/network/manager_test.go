package network

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
)

// TestNetworks: create (a free /24, or the subnet asked for), the names
// and subnets refused with what to do, lookup by name, ID and prefix,
// persistence across a restart, remove refused for the default network
// and one in use (Docker's text), prune by label.
func TestNetworks(t *testing.T) {
	dir := t.TempDir()
	m, err := New(Config{Dir: dir, Resolvers: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	create := func(opts CreateOptions) Info {
		t.Helper()
		i, err := m.Create(opts)
		if err != nil {
			t.Fatalf("create %+v: %v", opts, err)
		}
		return i
	}
	refused := func(opts CreateOptions, class error, msg string) {
		t.Helper()
		_, err := m.Create(opts)
		if !errors.Is(err, class) || err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("create %+v: %v, want %v containing %q", opts, err, class, msg)
		}
	}
	a := create(CreateOptions{Name: "a", Labels: map[string]string{"com.docker.compose.project": "p"}})
	b := create(CreateOptions{Name: "b"})
	c := create(CreateOptions{Name: "c", Subnet: netip.MustParsePrefix("10.50.0.0/16")})
	if a.Subnet.String() != "192.168.128.0/24" || b.Subnet.String() != "192.168.129.0/24" || c.Gateway().String() != "10.50.0.1" || c.HostAlias().String() != "10.50.255.254" {
		t.Fatalf("subnets: a %s, b %s, c %s gateway %s alias %s", a.Subnet, b.Subnet, c.Subnet, c.Gateway(), c.HostAlias())
	}
	if len(a.ID) != 64 || a.Created.IsZero() {
		t.Errorf("a: %+v", a)
	}
	refused(CreateOptions{Name: "a"}, errdefs.ErrConflict, "network with name a already exists")
	refused(CreateOptions{Name: "d", Subnet: netip.MustParsePrefix("10.50.3.0/24")}, errdefs.ErrInvalidArgument, "overlaps network c's 10.50.0.0/16")
	refused(CreateOptions{Name: "d", Subnet: netip.MustParsePrefix("192.168.127.128/25")}, errdefs.ErrInvalidArgument, "overlaps network bridge's")
	refused(CreateOptions{Name: "d", Subnet: netip.MustParsePrefix("10.60.0.5/24")}, errdefs.ErrInvalidArgument, "did you mean 10.60.0.0/24")
	refused(CreateOptions{Name: "d", Subnet: netip.MustParsePrefix("fd00::/64")}, errdefs.ErrInvalidArgument, "IPv4")
	refused(CreateOptions{Name: "bad name"}, errdefs.ErrInvalidArgument, "invalid name")
	refused(CreateOptions{Name: "none"}, errdefs.ErrPermissionDenied, "pre-defined")
	refused(CreateOptions{Name: "bridge"}, errdefs.ErrConflict, "already exists")

	for _, ref := range []string{"a", a.ID, a.ID[:12]} {
		if i, err := m.Get(ref); err != nil || i.ID != a.ID {
			t.Errorf("get %s: %+v %v", ref, i, err)
		}
	}
	if i, err := m.Get("default"); err != nil || !i.Default || i.Name != "bridge" || i.Subnet != DefaultSubnet || i.Created.IsZero() {
		t.Errorf("get default: %+v %v", i, err)
	}
	if _, err := m.Get("nope"); !errors.Is(err, errdefs.ErrNotFound) || err.Error() != "network nope not found" {
		t.Errorf("get nope: %v", err)
	}
	var names []string
	for _, i := range m.List() {
		names = append(names, i.Name)
	}
	if strings.Join(names, " ") != "bridge a b c" {
		t.Errorf("list: %v", names)
	}

	// In use: refused with Docker's text while the container runs.
	att, err := m.Attach(context.Background(), AttachRequest{ContainerID: "0123456789abcdef", Name: "web", Network: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Subnet.Contains(att.Address()) || att.NetworkName() != "b" {
		t.Errorf("attached to b at %s (%s)", att.Address(), att.NetworkName())
	}
	err = m.Remove("b")
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "error while removing network: network b id "+b.ID+" has active endpoints") || !strings.Contains(err.Error(), `name:"web"`) {
		t.Errorf("remove b in use: %v", err)
	}
	if err := m.Remove("bridge"); !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Errorf("remove the default network: %v", err)
	}
	pruned, err := m.Prune(func(Info) bool { return true })
	if err != nil || strings.Join(pruned, " ") != "a c" {
		t.Errorf("prune: %v %v, want a and c (b is in use, bridge is the default)", pruned, err)
	}
	att.Close()
	if err := m.Remove(b.ID[:10]); err != nil {
		t.Errorf("remove b once stopped: %v", err)
	}

	// A restart finds what is left.
	d := create(CreateOptions{Name: "d", Labels: map[string]string{"x": "1"}})
	m.Close()
	m2, err := New(Config{Dir: dir, Resolvers: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	got, err := m2.Get("d")
	if err != nil || got.ID != d.ID || got.Subnet != d.Subnet || got.Labels["x"] != "1" || !got.Created.Equal(d.Created) {
		t.Errorf("after a restart: %+v %v, want %+v", got, err, d)
	}
	def1, _ := m.Get("default")
	if def2, _ := m2.Get("default"); !def2.Created.Equal(def1.Created) {
		t.Errorf("the default network's creation time moved across a restart: %s, then %s", def1.Created, def2.Created)
	}
	if _, err := m2.Get("b"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("b after its removal and a restart: %v", err)
	}
	pruned, err = m2.Prune(func(i Info) bool { return i.Labels["x"] == "2" })
	if err != nil || len(pruned) != 0 {
		t.Errorf("prune label x=2: %v %v", pruned, err)
	}
}
