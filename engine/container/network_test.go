package container

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/network"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobynetwork "github.com/moby/moby/api/types/network"
)

// managerNetworks is engine/network's Manager as Networks (the engine's
// own adapter lives in package engine, which imports this one).
type managerNetworks struct{ m *network.Manager }

func (n managerNetworks) Attach(ctx context.Context, req network.AttachRequest) (NetworkAttachment, error) {
	a, err := n.m.Attach(ctx, req)
	if err != nil {
		return nil, err
	}
	return a, nil
}
func (n managerNetworks) Release(id string) error { return n.m.Release(id) }
func (n managerNetworks) Rename(id, name string)  { n.m.Rename(id, name) }
func (n managerNetworks) Resolve(ref string) (string, error) {
	i, err := n.m.Get(ref)
	return i.Name, err
}

// TestCreateNetworkModes: the network a create names is checked and
// kept by name (the default one as "default"); what cannot work is
// refused with the reason: an unknown network, ports or aliases without
// a network, a malformed --add-host, host-gateway without a network, a
// named network on an engine without networks.
func TestCreateNetworkModes(t *testing.T) {
	f := newFixture(t)
	nets, err := network.New(network.Config{Dir: t.TempDir(), Resolvers: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer nets.Close()
	front, err := nets.Create(network.CreateOptions{Name: "front"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(context.Background(), Config{
		Dir: filepath.Join(f.dir, "with-networks"), Images: f.images, Rootfs: f.cache, Events: f.bus, Networks: managerNetworks{nets},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	create := func(m *Manager, hc *mobycontainer.HostConfig, aliases ...string) (Snapshot, error) {
		c, err := m.Create(ctx, CreateRequest{Config: &mobycontainer.Config{Image: f.ref}, HostConfig: hc, Aliases: aliases})
		if err != nil {
			return Snapshot{}, err
		}
		return c.Snapshot(), nil
	}
	for mode, want := range map[string]string{"": "default", "bridge": "default", "default": "default", "front": "front", front.ID[:12]: "front", "none": "none"} {
		s, err := create(m, &mobycontainer.HostConfig{NetworkMode: mobycontainer.NetworkMode(mode), ExtraHosts: []string{"h.test:10.0.0.1"}}, "web")
		if mode == "none" {
			s, err = create(m, &mobycontainer.HostConfig{NetworkMode: "none"})
		}
		if err != nil || string(s.Spec.HostConfig.NetworkMode) != want {
			t.Errorf("--network %q: %v, mode %q, want %q", mode, err, s.Spec.HostConfig.NetworkMode, want)
		}
		if mode == "front" && strings.Join(s.Spec.Aliases, ",") != "web" {
			t.Errorf("aliases: %v", s.Spec.Aliases)
		}
	}
	ports := mobynetwork.PortMap{mobynetwork.MustParsePort("80/tcp"): {{HostPort: "8080"}}}
	for what, c := range map[string]struct {
		m       *Manager
		hc      *mobycontainer.HostConfig
		aliases []string
		class   error
		msg     string
	}{
		"unknown network":           {m, &mobycontainer.HostConfig{NetworkMode: "nope"}, nil, errdefs.ErrNotFound, "network nope not found"},
		"none with -p":              {m, &mobycontainer.HostConfig{NetworkMode: "none", PortBindings: ports}, nil, errdefs.ErrInvalidArgument, "conflicting options: port publishing"},
		"none with an alias":        {m, &mobycontainer.HostConfig{NetworkMode: "none"}, []string{"a"}, errdefs.ErrInvalidArgument, "--network-alias needs a network"},
		"bad alias":                 {m, &mobycontainer.HostConfig{}, []string{"a b"}, errdefs.ErrInvalidArgument, `invalid network alias "a b"`},
		"bad --add-host":            {m, &mobycontainer.HostConfig{ExtraHosts: []string{"nohost"}}, nil, errdefs.ErrInvalidArgument, `invalid argument "nohost" for "--add-host" flag`},
		"host-gateway on none":      {m, &mobycontainer.HostConfig{NetworkMode: "none", ExtraHosts: []string{"h:host-gateway"}}, nil, errdefs.ErrInvalidArgument, "host-gateway needs the container on a Berth network"},
		"a network, no networks":    {f.m, &mobycontainer.HostConfig{NetworkMode: "front"}, nil, errdefs.ErrInvalidArgument, "--network front: user-defined networks need Berth's networks"},
		"host-gateway, no networks": {f.m, &mobycontainer.HostConfig{ExtraHosts: []string{"h:host-gateway"}}, nil, errdefs.ErrInvalidArgument, "host-gateway needs the container on a Berth network"},
		"-P, no networks":           {f.m, &mobycontainer.HostConfig{PublishAllPorts: true}, nil, errdefs.ErrInvalidArgument, "publishing ports (-p) needs Berth's networks"},
	} {
		_, err := create(c.m, c.hc, c.aliases...)
		if !errors.Is(err, c.class) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v containing %q", what, err, c.class, c.msg)
		}
	}
	// Without networks, none and the default network still work.
	for _, mode := range []string{"", "none"} {
		if _, err := create(f.m, &mobycontainer.HostConfig{NetworkMode: mobycontainer.NetworkMode(mode)}); err != nil {
			t.Errorf("--network %q without networks: %v", mode, err)
		}
	}
}

// TestExposedPorts: a container's exposed ports are the image's EXPOSE,
// the request's (--expose) and its published ones, without changing the
// request's set.
func TestExposedPorts(t *testing.T) {
	req := mobynetwork.PortSet{mobynetwork.MustParsePort("53/udp"): {}}
	img := &v1.ConfigFile{Config: v1.Config{ExposedPorts: map[string]struct{}{"80/tcp": {}, "8080": {}, "x": {}}}}
	got := mergeImageConfig(&mobycontainer.Config{ExposedPorts: req}, img).ExposedPorts
	if len(got) != 3 || len(req) != 1 {
		t.Fatalf("merged exposed ports %v (request's now %v)", got, req)
	}
	for _, p := range []string{"53/udp", "80/tcp", "8080/tcp"} {
		if _, ok := got[mobynetwork.MustParsePort(p)]; !ok {
			t.Errorf("merged exposed ports %v lack %s", got, p)
		}
	}

	f := newFixture(t)
	nets, err := network.New(network.Config{Dir: t.TempDir(), Resolvers: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer nets.Close()
	m, err := NewManager(context.Background(), Config{
		Dir: filepath.Join(f.dir, "with-networks"), Images: f.images, Rootfs: f.cache, Events: f.bus, Networks: managerNetworks{nets},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ports := mobynetwork.PortMap{mobynetwork.MustParsePort("80/tcp"): {{HostPort: "8080"}}}
	c, err := m.Create(context.Background(), CreateRequest{Config: &mobycontainer.Config{Image: f.ref, ExposedPorts: req}, HostConfig: &mobycontainer.HostConfig{PortBindings: ports, PublishAllPorts: true}})
	if err != nil {
		t.Fatal(err)
	}
	exp := c.Snapshot().Spec.Config.ExposedPorts
	if _, ok := exp[mobynetwork.MustParsePort("80/tcp")]; !ok || len(exp) != 2 || len(req) != 1 {
		t.Errorf("created container's exposed ports %v, want 53/udp and the published 80/tcp (request's now %v)", exp, req)
	}
}

// TestConnectDisconnectStopped: docker network connect and disconnect
// of a created container (the running case is the end-to-end test's):
// connecting one already on a network is refused naming it, as is one
// created with --network none; disconnect leaves it on no network (the
// network mode kept) and connect then takes it, with aliases and --ip,
// persisted; --ip on the default network and bad aliases are refused;
// an engine without networks refuses both.
func TestConnectDisconnectStopped(t *testing.T) {
	f := newFixture(t)
	nets, err := network.New(network.Config{Dir: t.TempDir(), Resolvers: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer nets.Close()
	if _, err := nets.Create(network.CreateOptions{Name: "front"}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(f.dir, "with-networks")
	cfg := Config{Dir: dir, Images: f.images, Rootfs: f.cache, Events: f.bus, Networks: managerNetworks{nets}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	m, err := NewManager(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	web, err := m.Create(ctx, CreateRequest{Name: "web", Config: &mobycontainer.Config{Image: f.ref}, HostConfig: &mobycontainer.HostConfig{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, CreateRequest{Name: "quiet", Config: &mobycontainer.Config{Image: f.ref}, HostConfig: &mobycontainer.HostConfig{NetworkMode: "none"}}); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.168.128.9")
	for what, c := range map[string]struct {
		err   error
		class error
		msg   string
	}{
		"connect front to web on bridge": {func() error { _, err := m.Connect("web", "front", Endpoint{}); return err }(), errdefs.ErrNotImplemented, "this one is on bridge: disconnect it from bridge first"},
		"connect bridge to web":          {func() error { _, err := m.Connect("web", "bridge", Endpoint{}); return err }(), errdefs.ErrPermissionDenied, "endpoint with name web already exists in network bridge"},
		"connect a none container":       {func() error { _, err := m.Connect("quiet", "front", Endpoint{}); return err }(), errdefs.ErrInvalidArgument, "private (none) mode"},
		"disconnect from front":          {func() error { _, err := m.Disconnect("web", "front"); return err }(), errdefs.ErrInvalidArgument, "is not connected to network front"},
		"disconnect from nope":           {func() error { _, err := m.Disconnect("web", "nope"); return err }(), errdefs.ErrNotFound, "network nope not found"},
	} {
		if !errors.Is(c.err, c.class) || !strings.Contains(c.err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v containing %q", what, c.err, c.class, c.msg)
		}
	}
	if name, err := m.Disconnect("web", "bridge"); err != nil || name != "bridge" {
		t.Fatalf("disconnect web: %q %v", name, err)
	}
	if s := web.Snapshot().Spec; s.NetworkName() != network.None || s.HostConfig.NetworkMode != "default" {
		t.Errorf("after disconnect: network %q, mode %q", s.NetworkName(), s.HostConfig.NetworkMode)
	}
	if _, err := m.Connect("web", "bridge", Endpoint{IP: ip}); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "user defined networks only") {
		t.Errorf("connect --ip to the default network: %v", err)
	}
	if _, err := m.Connect("web", "front", Endpoint{Aliases: []string{"a b"}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("connect with a bad alias: %v", err)
	}
	if name, err := m.Connect("web", "front", Endpoint{Aliases: []string{"api"}, IP: ip}); err != nil || name != "front" {
		t.Fatalf("connect web to front: %q %v", name, err)
	}
	// Recorded: a manager opened afresh has it.
	m2, err := NewManager(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m2.Get("web")
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Snapshot().Spec; s.NetworkName() != "front" || strings.Join(s.Aliases, ",") != "api" || s.IP != ip {
		t.Errorf("after connect, reopened: network %q, aliases %v, ip %s", s.NetworkName(), s.Aliases, s.IP)
	}
	if _, err := f.m.Connect("web", "front", Endpoint{}); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("connect on an engine without networks: %v", err)
	}
}

// TestConnectRunningRefused: while a container runs, restarts, is
// paused or starts, connect and disconnect are refused as a conflict
// (409) that says to stop it first; stopped, created or exited, they
// are not.
func TestConnectRunningRefused(t *testing.T) {
	for status, refused := range map[mobycontainer.ContainerState]bool{
		mobycontainer.StateRunning: true, mobycontainer.StateRestarting: true, mobycontainer.StatePaused: true,
		mobycontainer.StateCreated: false, mobycontainer.StateExited: false,
	} {
		c := newContainer(t.TempDir(), Spec{ID: strings.Repeat("a", 64), Name: "web"}, State{Status: status})
		err := c.stoppedLocked("connect", "front")
		if got := err != nil; got != refused {
			t.Errorf("%s: %v, want refused %v", status, err, refused)
			continue
		}
		if refused && (!errors.Is(err, errdefs.ErrConflict) || errdefs.HTTPStatus(err) != 409 || !strings.Contains(err.Error(), "stop it, connect it, and start it again")) {
			t.Errorf("%s: %v (HTTP %d), want a conflict saying to stop it first", status, err, errdefs.HTTPStatus(err))
		}
	}
	c := newContainer(t.TempDir(), Spec{ID: strings.Repeat("a", 64), Name: "web"}, State{Status: mobycontainer.StateCreated})
	c.busy = "starting"
	if err := c.stoppedLocked("disconnect", "front"); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("starting: %v, want a conflict", err)
	}
}
