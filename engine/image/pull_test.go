package image

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/testenv"
)

// eventLog collects progress events.
type eventLog struct {
	mu sync.Mutex
	ev []Event
}

func (l *eventLog) add(e Event) { l.mu.Lock(); l.ev = append(l.ev, e); l.mu.Unlock() }

// last returns the last state seen for each layer ID.
func (l *eventLog) last() map[string]State {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]State{}
	for _, e := range l.ev {
		m[e.ID] = e.State
	}
	return m
}

// verifyStore checks that every visible blob hashes to its name and that
// no temporary file is visible among the blobs.
func verifyStore(t *testing.T, s *Store) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Dir(), blobsDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(s.Dir(), blobsDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h, _, err := v1.SHA256(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if h.Hex != e.Name() {
			t.Errorf("blob %s hashes to %s", e.Name(), h)
		}
	}
}

func TestPullSingleArch(t *testing.T) {
	f := sharedFixture(t)
	proxy := newFakeFaultyRegistry(t, f.reg.Host)
	s := openTestStore(t)
	ctx := context.Background()
	var log eventLog
	ref := proxy.Host + "/test/busybox:1"
	res, err := s.Pull(ctx, ref, WithProgress(log.add))
	if err != nil {
		t.Fatal(err)
	}
	if want := mustConfigName(t, f.single); res.Image.ID != want {
		t.Errorf("ID = %s, want %s", res.Image.ID, want)
	}
	if !res.Updated || res.Ref != ref {
		t.Errorf("result = %+v", res)
	}
	md := mustDigest(t, f.single)
	if res.Digest != md {
		t.Errorf("Digest = %s, want %s", res.Digest, md)
	}
	if got := strings.Join(res.Image.RepoTags, ","); got != ref {
		t.Errorf("RepoTags = %q", got)
	}
	if got := strings.Join(res.Image.RepoDigests, ","); got != proxy.Host+"/test/busybox@"+md.String() {
		t.Errorf("RepoDigests = %q", got)
	}
	cfg := res.Image.Config
	if strings.Join(cfg.Config.Cmd, " ") != "sh" || cfg.Config.WorkingDir != "/data" || cfg.Config.User != "1000" ||
		cfg.Config.Labels["org.berth.test"] != "yes" || res.Image.Labels["seed"] != "1" {
		t.Errorf("config = %+v", cfg.Config)
	}
	if res.Image.Platform.Architecture != hostPlatform.Architecture {
		t.Errorf("platform = %+v", res.Image.Platform)
	}
	layers := layerDigests(t, f.single)
	states := log.last()
	for _, l := range layers {
		if st := states[ShortID(l.Hex)]; st != PullComplete {
			t.Errorf("layer %s ended in state %q, want %q", l, st, PullComplete)
		}
	}
	verifyStore(t, s)

	// Progress of the big layer: Pulling fs layer, Downloading with
	// growing Current of the right Total, Verifying, Download complete,
	// Pull complete.
	var bigLog eventLog
	if _, err := s.Pull(ctx, proxy.Host+"/test/big:1", WithProgress(bigLog.add)); err != nil {
		t.Fatal(err)
	}
	bl, _ := f.big.Layers()
	bsize, _ := bl[0].Size()
	var seq []State
	var lastCur int64
	for _, e := range bigLog.ev {
		if e.Total != bsize || e.ID != ShortID(layerDigests(t, f.big)[0].Hex) {
			t.Errorf("event %+v: want Total %d", e, bsize)
		}
		if e.State == Downloading {
			if e.Current < lastCur || e.Current <= 0 || e.Current >= e.Total {
				t.Errorf("Downloading event Current %d after %d of %d", e.Current, lastCur, e.Total)
			}
			lastCur = e.Current
		}
		if len(seq) == 0 || seq[len(seq)-1] != e.State {
			seq = append(seq, e.State)
		}
	}
	if want := []State{PullingFSLayer, Downloading, Verifying, DownloadComplete, PullComplete}; !slices.Equal(seq, want) {
		t.Errorf("big layer states %v, want %v", seq, want)
	}

	// The stored image reads back as a v1.Image with the same content.
	img, err := s.Image(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if d := mustDigest(t, img); d != md {
		t.Errorf("stored image digest %s, want %s", d, md)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) != 2 {
		t.Fatalf("layers: %d, %v", len(ls), err)
	}
	rc, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		found = found || h.Name == "bin/busybox"
	}
	rc.Close()
	if !found {
		t.Error("bin/busybox not in the first layer")
	}

	// A second pull downloads no blob.
	before := proxy.totalBlobGets()
	var log2 eventLog
	res2, err := s.Pull(ctx, ref, WithProgress(log2.add))
	if err != nil {
		t.Fatal(err)
	}
	if n := proxy.totalBlobGets() - before; n != 0 {
		t.Errorf("second pull made %d blob GETs, want 0", n)
	}
	if res2.Updated {
		t.Error("second pull says Updated")
	}
	for _, l := range layers {
		if st := log2.last()[ShortID(l.Hex)]; st != AlreadyExists {
			t.Errorf("second pull: layer %s state %q, want %q", l, st, AlreadyExists)
		}
	}
}

func TestPullMultiArch(t *testing.T) {
	f := sharedFixture(t)
	s := openTestStore(t)
	ctx := context.Background()
	ref := f.ref("test/multi:1")
	want := map[string]v1.Image{"amd64": f.amd64, "arm64": f.arm64}

	res, err := s.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if hostImg, ok := want[hostPlatform.Architecture]; ok {
		if id := mustConfigName(t, hostImg); res.Image.ID != id {
			t.Errorf("host pull got %s, want the %s variant %s", res.Image.ID, hostPlatform.Architecture, id)
		}
	}
	if idx := mustDigest(t, f.index); res.Digest != idx || res.Image.RepoDigests[0] != f.reg.Host+"/test/multi@"+idx.String() {
		t.Errorf("digest %s, RepoDigests %v; want the index digest %s", res.Digest, res.Image.RepoDigests, idx)
	}

	other := otherArch()
	res2, err := s.Pull(ctx, ref, WithPlatform(other))
	if err != nil {
		t.Fatal(err)
	}
	if id := mustConfigName(t, want[other.Architecture]); res2.Image.ID != id {
		t.Errorf("%s pull got %s, want %s", other.Architecture, res2.Image.ID, id)
	}
	if res2.Image.Platform.Architecture != other.Architecture {
		t.Errorf("platform %+v", res2.Image.Platform)
	}
	// The tag moved to the other variant; the host one is now dangling.
	got, err := s.Get(ctx, ref)
	if err != nil || got.ID != res2.Image.ID {
		t.Errorf("Get(%s) = %v, %v; want %s", ref, got, err, res2.Image.ID)
	}

	_, err = s.Pull(ctx, ref, WithPlatform(v1.Platform{OS: "linux", Architecture: "riscv64"}))
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "linux/riscv64") ||
		!strings.Contains(err.Error(), "linux/amd64") || !strings.Contains(err.Error(), "linux/arm64/v8") {
		t.Errorf("riscv64 pull: %v; want NotFound listing linux/amd64 and linux/arm64/v8", err)
	}
}

func TestPullSingleArchWrongPlatform(t *testing.T) {
	f := sharedFixture(t)
	s := openTestStore(t)
	_, err := s.Pull(context.Background(), f.ref("test/busybox:1"), WithPlatform(otherArch()))
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "does not match the specified platform") ||
		!strings.Contains(err.Error(), "actual: linux/"+hostPlatform.Architecture) {
		t.Errorf("pull of a %s-only image for %s: %v", hostPlatform.Architecture, platformString(otherArch()), err)
	}
	if imgs, _ := s.List(context.Background()); len(imgs) != 0 {
		t.Errorf("image recorded: %v", imgs)
	}
}

func TestPullByDigest(t *testing.T) {
	f := sharedFixture(t)
	s := openTestStore(t)
	ctx := context.Background()
	md := mustDigest(t, f.single)
	ref := f.ref("test/busybox@" + md.String())
	res, err := s.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Image.RepoTags) != 0 || len(res.Image.RepoDigests) != 1 || res.Image.RepoDigests[0] != ref {
		t.Errorf("tags %v digests %v", res.Image.RepoTags, res.Image.RepoDigests)
	}
	if _, err := s.Get(ctx, ref); err != nil {
		t.Errorf("Get by digest: %v", err)
	}
	bad := f.ref("test/busybox@sha256:" + strings.Repeat("0", 64))
	if _, err := s.Pull(ctx, bad); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "manifest unknown") {
		t.Errorf("pull unknown digest: %v", err)
	}
}

func TestPullErrors(t *testing.T) {
	f := sharedFixture(t)
	s := openTestStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		ref   string
		class error
		text  string
	}{
		{f.ref("test/busybox:nope"), errdefs.ErrNotFound, "manifest unknown"},
		{f.ref("test/nothing:1"), errdefs.ErrNotFound, "manifest unknown"},
		{"Alpine:UPPER!", errdefs.ErrInvalidArgument, "invalid reference format"},
		{"127.0.0.1:1/x:y", errdefs.ErrUnavailable, "registry 127.0.0.1:1 unreachable"},
	} {
		_, err := s.Pull(ctx, tc.ref)
		if !errors.Is(err, tc.class) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("Pull(%s) = %v; want %v containing %q", tc.ref, err, tc.class, tc.text)
		}
	}
	if _, err := s.Get(ctx, "nosuch:1"); !errors.Is(err, errdefs.ErrNotFound) || err.Error() != "No such image: nosuch:1" {
		t.Errorf("Get unknown: %v", err)
	}
}

func TestPullAuth(t *testing.T) {
	reg := testenv.StartAuthRegistry(t, "berth", "s3cret")
	creds := &authn.Basic{Username: "berth", Password: "s3cret"}
	ref := reg.Host + "/private/busybox:1"
	push(t, ref, testImage(t, hostPlatform, 5, 16<<10, false), creds)
	ctx := context.Background()

	s := openTestStore(t)
	if _, err := s.Pull(ctx, ref); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("anonymous pull: %v; want Unauthorized", err)
	}
	if _, err := s.Pull(ctx, ref, WithAuth(&authn.Basic{Username: "berth", Password: "wrong"})); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("pull with a wrong password: %v; want Unauthorized", err)
	}
	if _, err := s.Pull(ctx, ref, WithAuth(creds)); err != nil {
		t.Errorf("pull with credentials: %v", err)
	}

	// Credentials from a docker config.json through the default keychain.
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"),
		[]byte(`{"auths":{"`+reg.Host+`":{"auth":"YmVydGg6czNjcmV0"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)
	s2 := openTestStore(t, WithKeychain(authn.DefaultKeychain))
	if _, err := s2.Pull(ctx, ref); err != nil {
		t.Errorf("pull with ~/.docker/config.json credentials: %v", err)
	}
}

func TestConcurrentPullsFetchEachBlobOnce(t *testing.T) {
	f := sharedFixture(t)
	proxy := newFakeFaultyRegistry(t, f.reg.Host)
	s := openTestStore(t)
	ctx := context.Background()
	ref := proxy.Host + "/test/busybox:1"
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Pull(ctx, ref)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("pull %d: %v", i, err)
		}
	}
	cfg, _ := f.single.ConfigName()
	for _, d := range append(layerDigests(t, f.single), cfg) {
		if n := proxy.blobGets(d); n != 1 {
			t.Errorf("blob %s fetched %d times, want 1", d, n)
		}
	}
	verifyStore(t, s)
}
