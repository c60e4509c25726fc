package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// This file holds the test fixtures: a real registry (testenv's: Debian's
// docker-registry on a loopback port), test images built from Debian's
// busybox-static plus synthetic layers, and a fake faulty front for the
// registry used where the real one cannot fail on demand.

// tarLayer builds an uncompressed layer tar from name → content; a
// content starting with "->" is a symlink to the rest.
func tarLayer(t testing.TB, files map[string][]byte) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	// deterministic order
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if names[j] < names[i] {
				names[i], names[j] = names[j], names[i]
			}
		}
	}
	for _, n := range names {
		c := files[n]
		hdr := &tar.Header{Name: n, Mode: 0o755, ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg, Size: int64(len(c))}
		if target, ok := strings.CutPrefix(string(c), "->"); ok {
			hdr = &tar.Header{Name: n, Mode: 0o777, ModTime: hdr.ModTime, Typeflag: tar.TypeSymlink, Linkname: target}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// randomBytes returns n pseudo-random (incompressible) bytes from seed.
func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// testImage builds an image for platform: the busybox layer (when
// withBusybox) and one synthetic layer of size random bytes.
func testImage(t testing.TB, p v1.Platform, seed int64, size int, withBusybox bool) v1.Image {
	t.Helper()
	var layers []v1.Layer
	if withBusybox {
		testenv.RequireTool(t, testenv.BusyboxBin, "busybox-static")
		bb, err := os.ReadFile(testenv.BusyboxBin)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, tarLayer(t, map[string][]byte{"bin/busybox": bb, "bin/sh": []byte("->busybox")}))
	}
	layers = append(layers, tarLayer(t, map[string][]byte{
		fmt.Sprintf("data/%d.bin", seed): randomBytes(seed, size),
		"etc/berth-test":                 []byte(fmt.Sprintf("%s/%s %d\n", p.OS, p.Architecture, seed)),
	}))
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: time.Unix(1700000000+seed, 0).UTC()}
	cf.Config.Cmd = []string{"sh"}
	cf.Config.Entrypoint = []string{"/bin/busybox"}
	cf.Config.Env = []string{"PATH=/bin", fmt.Sprintf("SEED=%d", seed)}
	cf.Config.WorkingDir = "/data"
	cf.Config.User = "1000"
	cf.Config.Labels = map[string]string{"org.berth.test": "yes", "seed": fmt.Sprint(seed)}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

var hostPlatform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

// otherArch is a platform the multi-arch test image has besides the host's.
func otherArch() v1.Platform {
	if runtime.GOARCH == "arm64" {
		return v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	return v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
}

// fixture is the shared registry with the test images pushed into it.
type fixture struct {
	reg    *testenv.Registry
	single v1.Image // REG/test/busybox:1, host platform
	big    v1.Image // REG/test/big:1, host platform, one 4 MiB layer
	index  v1.ImageIndex
	amd64  v1.Image // variants of REG/test/multi:1
	arm64  v1.Image
}

func (f *fixture) ref(repoTag string) string { return f.reg.Host + "/" + repoTag }

var (
	fixtureOnce sync.Once
	theFixture  *fixture
	fixtureErr  string
	fixtureTB   = &fixtureT{}
)

// TestMain stops the shared registry after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(fixtureTB.cleanups) - 1; i >= 0; i-- {
		fixtureTB.cleanups[i]()
	}
	os.Exit(code)
}

// sharedFixture starts one registry per test binary and pushes the test
// images into it.
func sharedFixture(t testing.TB) *fixture {
	t.Helper()
	testenv.RequireTool(t, testenv.RegistryBin, "docker-registry")
	testenv.RequireTool(t, testenv.BusyboxBin, "busybox-static")
	fixtureOnce.Do(func() {
		ft := fixtureTB
		func() {
			defer func() {
				if r := recover(); r != nil && r != errFixture {
					panic(r)
				}
			}()
			theFixture = buildFixture(ft)
		}()
		fixtureErr = ft.msg
	})
	if fixtureErr != "" {
		t.Fatal(fixtureErr)
	}
	return theFixture
}

func buildFixture(t *fixtureT) *fixture {
	f := &fixture{reg: testenv.StartRegistry(t)}
	f.single = testImage(t, hostPlatform, 1, 64<<10, true)
	f.big = testImage(t, hostPlatform, 2, 4<<20, false)
	f.amd64 = testImage(t, v1.Platform{OS: "linux", Architecture: "amd64"}, 3, 32<<10, true)
	f.arm64 = testImage(t, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, 4, 32<<10, true)
	f.index = mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: f.amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: f.arm64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	push(t, f.ref("test/busybox:1"), f.single, nil)
	push(t, f.ref("test/big:1"), f.big, nil)
	ref, err := name.ParseReference(f.ref("test/multi:1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, f.index); err != nil {
		t.Fatal(err)
	}
	return f
}

func push(t testing.TB, ref string, img v1.Image, auth authn.Authenticator) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{}
	if auth != nil {
		opts = append(opts, remote.WithAuth(auth))
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// fixtureT lets the shared fixture be built outside any one test: Fatal
// records the message and unwinds.
type fixtureT struct {
	testing.TB
	msg      string
	cleanups []func()
}

var errFixture = fmt.Errorf("fixture failed")

func (f *fixtureT) Helper()                   {}
func (f *fixtureT) Fatal(args ...any)         { f.msg = fmt.Sprint(args...); panic(errFixture) }
func (f *fixtureT) Fatalf(s string, a ...any) { f.msg = fmt.Sprintf(s, a...); panic(errFixture) }
func (f *fixtureT) Skipf(s string, a ...any)  { f.Fatalf(s, a...) }
func (f *fixtureT) Cleanup(fn func())         { f.cleanups = append(f.cleanups, fn) }
func (f *fixtureT) TempDir() string {
	d, err := os.MkdirTemp("", "berth-image-test-")
	if err != nil {
		f.Fatal(err)
	}
	f.cleanups = append(f.cleanups, func() { os.RemoveAll(d) })
	return d
}

// openTestStore opens a store in a fresh directory with fast retries.
func openTestStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "images"), append([]Option{WithRetry(4, 10*time.Millisecond), WithKeychain(authn.NewMultiKeychain())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fault is what fakeFaultyRegistry does to one blob GET.
type fault int

const (
	faultNone     fault = iota
	fault500            // answer 500
	faultCut            // send half the body, then drop the connection
	faultTruncate       // send half the body with a Content-Length to match
	faultCorrupt        // send the full length with one byte flipped
	faultStall          // send half the body, signal stalled, hang until the client goes
)

// fakeFaultyRegistry is a fake: an HTTP front for the real registry that
// counts requests and injects faults into blob downloads on demand, which
// the real registry cannot do.
type fakeFaultyRegistry struct {
	upstream *url.URL
	srv      *http.Server
	Host     string

	mu      sync.Mutex
	faults  map[string][]fault  // digest → faults for the next GETs, in order
	gets    map[string]int      // digest → blob GETs seen
	ranges  []string            // Range headers seen on blob GETs
	onBlob  func(digest string) // called before serving a blob GET
	stalled chan struct{}       // faultStall sends here once half the body is out
}

func newFakeFaultyRegistry(t testing.TB, upstreamHost string) *fakeFaultyRegistry {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFaultyRegistry{
		upstream: &url.URL{Scheme: "http", Host: upstreamHost},
		Host:     l.Addr().String(),
		faults:   map[string][]fault{},
		gets:     map[string]int{},
	}
	proxy := httputil.NewSingleHostReverseProxy(f.upstream)
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The key of a request: a blob's digest, or "manifests/<tag|digest>".
		digest := ""
		if i := strings.Index(r.URL.Path, "/blobs/sha256:"); i >= 0 {
			digest = r.URL.Path[i+len("/blobs/"):]
		} else if i := strings.Index(r.URL.Path, "/manifests/"); i >= 0 {
			digest = r.URL.Path[i+1:]
		}
		if r.Method != http.MethodGet || digest == "" {
			proxy.ServeHTTP(w, r)
			return
		}
		f.mu.Lock()
		f.gets[digest]++
		if rg := r.Header.Get("Range"); rg != "" {
			f.ranges = append(f.ranges, rg)
		}
		flt := faultNone
		if q := f.faults[digest]; len(q) > 0 {
			flt, f.faults[digest] = q[0], q[1:]
		}
		hook := f.onBlob
		f.mu.Unlock()
		if hook != nil {
			hook(digest)
		}
		if flt == faultNone {
			proxy.ServeHTTP(w, r)
			return
		}
		f.serveFault(w, r, flt)
	})}
	go f.srv.Serve(l)
	t.Cleanup(func() { f.srv.Close() })
	return f
}

func (f *fakeFaultyRegistry) serveFault(w http.ResponseWriter, r *http.Request, flt fault) {
	if flt == fault500 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"errors":[{"code":"UNKNOWN","message":"fake failure"}]}`)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, f.upstream.String()+r.URL.Path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	w.Header().Set("Content-Type", "application/octet-stream")
	switch flt {
	case faultCut:
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	case faultTruncate:
		w.Header().Set("Content-Length", fmt.Sprint(len(body)/2))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)/2])
	case faultStall:
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		f.mu.Lock()
		stalled := f.stalled
		f.mu.Unlock()
		if stalled != nil {
			stalled <- struct{}{}
		}
		<-r.Context().Done()
	case faultCorrupt:
		body[len(body)/2] ^= 0xff
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	}
}

func (f *fakeFaultyRegistry) setFaults(digest v1.Hash, faults ...fault) {
	f.setFaultsKey(digest.String(), faults...)
}

// setFaultsKey sets faults for a request key: a digest string or
// "manifests/<tag|digest>".
func (f *fakeFaultyRegistry) setFaultsKey(key string, faults ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[key] = faults
}

func (f *fakeFaultyRegistry) setHook(h func(digest string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onBlob = h
}

func (f *fakeFaultyRegistry) blobGets(digest v1.Hash) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets[digest.String()]
}

func (f *fakeFaultyRegistry) totalBlobGets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, c := range f.gets {
		if strings.HasPrefix(k, "sha256:") {
			n += c
		}
	}
	return n
}

func (f *fakeFaultyRegistry) rangeHeaders() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ranges...)
}

// layerDigests returns img's layer digests.
func layerDigests(t testing.TB, img v1.Image) []v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func mustDigest(t testing.TB, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustConfigName(t testing.TB, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}
