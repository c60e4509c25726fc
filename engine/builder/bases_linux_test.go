//go:build linux

package builder_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/berthvm/berth/engine/builder"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/engine/network"
	"github.com/berthvm/berth/internal/testenv"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/miekg/dns"
)

// countingRegistry is a test registry (testenv's docker-registry)
// behind a loopback proxy that counts the requests that reach it.
type countingRegistry struct {
	Host string
	n    atomic.Int64
}

func startCountingRegistry(t *testing.T) (*countingRegistry, *testenv.Registry) {
	t.Helper()
	reg := testenv.StartRegistry(t)
	u, _ := url.Parse("http://" + reg.Host)
	c := &countingRegistry{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.Host = strings.TrimPrefix(srv.URL, "http://")
	return c, reg
}

func (c *countingRegistry) requests() int64 { return c.n.Load() }

// newBasesManager is a builder Manager with a network manager and an
// image store, for LocalBases; its VM is never started.
func newBasesManager(t *testing.T) (*builder.Manager, *image.Store) {
	t.Helper()
	h := home.Home{Dir: t.TempDir()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nets, err := network.New(network.Config{Dir: h.Path("networks"), Resolvers: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nets.Close() })
	st, err := image.Open(h.Path("images"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	vms := launcher.New(h, log, kernel.NewSetup(kernel.Options{Home: h.Dir}))
	t.Cleanup(func() { vms.Close() })
	m, err := builder.New(builder.Config{Dir: h.Path("builder"), VMs: vms, Networks: nets, Images: st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, st
}

// TestLocalBases: a base image not in the store is pulled once with the
// engine's pull, then served from the store (no further request to its
// registry); the options name BuildKit's named context for the FROM's
// name and platform and point at the manifest in the builder's
// registry; a base the store holds for another platform only, scratch
// and stage names are left to BuildKit; a base that is nowhere is an
// error naming it, its line and what to do.
func TestLocalBases(t *testing.T) {
	testenv.RequireTool(t, testenv.RegistryBin, "docker-registry")
	reg, real := startCountingRegistry(t)
	ref := reg.Host + "/busybox:1"
	real.Push(t, "busybox", "1", testenv.BusyboxImage(t, nil))
	m, st := newBasesManager(t)
	ctx := context.Background()
	plat := "linux/" + runtime.GOARCH

	df := []byte("ARG BASE=" + reg.Host + "/busybox\nFROM ${BASE}:1 AS one\nFROM one\nFROM scratch\nRUN echo\n")
	before := reg.requests()
	opts, err := m.LocalBases(ctx, df, nil, "")
	if err != nil {
		t.Fatalf("LocalBases: %v", err)
	}
	img, err := st.Get(ctx, ref)
	if err != nil {
		t.Fatalf("the base is not in the store after LocalBases: %v", err)
	}
	if reg.requests() == before {
		t.Errorf("LocalBases did not pull the base through the engine")
	}
	want := []string{"--opt", "context:" + ref + "::" + plat + "=docker-image://" + m.RegistryHost() + "/" +
		strings.Replace(reg.Host, ":", "_", 1) + "/busybox@" + img.Manifest.Digest.String()}
	if strings.Join(opts, " ") != strings.Join(want, " ") {
		t.Errorf("LocalBases = %q\nwant        %q", opts, want)
	}
	if m.RegistryHost() != "192.168.126.1:5000" {
		t.Errorf("RegistryHost = %s", m.RegistryHost())
	}

	// Again: from the store, the registry is not asked.
	before = reg.requests()
	again, err := m.LocalBases(ctx, []byte("FROM "+ref+"\n"), nil, plat)
	if err != nil || strings.Join(again, " ") != strings.Join(want, " ") {
		t.Errorf("LocalBases again: %q, %v", again, err)
	}
	if n := reg.requests() - before; n != 0 {
		t.Errorf("LocalBases of a stored base sent %d requests to its registry", n)
	}

	// Another platform than the stored one: left to BuildKit.
	other := "linux/arm64"
	if runtime.GOARCH == "arm64" {
		other = "linux/amd64"
	}
	if o, err := m.LocalBases(ctx, []byte("FROM --platform="+other+" "+ref+"\n"), nil, ""); err != nil || len(o) != 0 {
		t.Errorf("a base stored for another platform: %q, %v; want nothing", o, err)
	}
	// A stage named like the base: a named context would replace the stage.
	if o, err := m.LocalBases(ctx, []byte("FROM "+reg.Host+"/busybox:1 AS busybox\nFROM busybox\n"), nil, ""); err != nil || len(o) != 2 {
		t.Errorf("a stage named busybox: %q, %v; want only the real base", o, err)
	}
	if o, _ := m.LocalBases(ctx, []byte("FROM busybox AS busybox\n"), nil, ""); len(o) != 0 {
		t.Errorf("a base whose name is a stage's: %q; want nothing", o)
	}

	// Missing everywhere: an error naming the image, its line, what to do.
	missing := reg.Host + "/nothere:1"
	_, err = m.LocalBases(ctx, []byte("FROM scratch AS x\n\nFROM "+missing+"\n"), nil, "")
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a base that is nowhere: %v; want errdefs.ErrNotFound", err)
	}
	for _, w := range []string{"base image " + missing, "line 3", "berth pull " + missing, "berth login"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("a base that is nowhere: %v; want it to say %q", err, w)
		}
	}
	if _, err := m.LocalBases(ctx, df, nil, "linux/amd64,bad platform"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("a bad build platform: %v", err)
	}
}

// testDNS serves DNS on a loopback UDP port: name's A record is ip;
// other types of name are empty, other names NXDOMAIN. It stands for
// the host's resolver.
func testDNS(t *testing.T, name, ip string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		switch {
		case len(q.Question) != 1 || q.Question[0].Name != dns.Fqdn(name):
			m.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(ip)})
		}
		_ = w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

// checkBasedImage loads the docker archive at path into images (as
// `berth load`) and checks it is the base's layer plus the RUN step's,
// whose /f holds the line the step wrote and whose /dns shows the name
// resolved through the builder's network.
func checkBasedImage(ctx context.Context, t *testing.T, images *image.Store, path, baseRef string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := images.Import(ctx, f)
	f.Close()
	if err != nil || len(imgs) != 1 {
		t.Fatalf("load the built image: %v, %+v", err, imgs)
	}
	base, err := images.Get(ctx, baseRef)
	if err != nil {
		t.Fatal(err)
	}
	diffs := imgs[0].Config.RootFS.DiffIDs
	if len(diffs) != 2 || diffs[0] != base.Config.RootFS.DiffIDs[0] {
		t.Fatalf("the built image's layers %v; want the base's %v and the RUN step's", diffs, base.Config.RootFS.DiffIDs)
	}
	img, err := images.Image(ctx, imgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := layerFiles(t, layers[1], "f", "dns")
	if files["f"] != "based on busybox\n" {
		t.Errorf("the RUN step's /f = %q", files["f"])
	}
	if !strings.Contains(files["dns"], "192.0.2.10") {
		t.Errorf("nslookup registry.berth.test in the RUN step (through the builder's NIC and its network's DNS server) printed %q; want 192.0.2.10", files["dns"])
	}
}

// layerFiles reads the named files from a layer.
func layerFiles(t *testing.T, l v1.Layer, names ...string) map[string]string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.TrimPrefix(h.Name, "./") == n {
				b, _ := io.ReadAll(tr)
				out[n] = string(b)
			}
		}
	}
}
