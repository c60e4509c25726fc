package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/testenv"
)

// The tests in this file put fakeFaultyRegistry (a fake front that fails
// on demand) between the store and the real registry.

func bigLayer(t *testing.T, f *fixture) (ref string, proxy *fakeFaultyRegistry, s *Store) {
	t.Helper()
	proxy = newFakeFaultyRegistry(t, f.reg.Host)
	return proxy.Host + "/test/big:1", proxy, openTestStore(t)
}

func TestPullRetries500(t *testing.T) {
	f := sharedFixture(t)
	ref, proxy, s := bigLayer(t, f)
	layer := layerDigests(t, f.big)[0]
	proxy.setFaults(layer, fault500, fault500)
	var log eventLog
	if _, err := s.Pull(context.Background(), ref, WithProgress(log.add)); err != nil {
		t.Fatalf("pull after two 500s: %v", err)
	}
	if n := proxy.blobGets(layer); n != 3 {
		t.Errorf("layer fetched %d times, want 3 (500, 500, 200)", n)
	}
	retries := 0
	for _, e := range log.ev {
		if e.State == Retrying && e.Err != nil {
			retries++
		}
	}
	if retries != 2 {
		t.Errorf("%d Retrying events, want 2", retries)
	}
	verifyStore(t, s)
}

func TestPullPersistent500IsUnavailable(t *testing.T) {
	f := sharedFixture(t)
	ref, proxy, s := bigLayer(t, f)
	layer := layerDigests(t, f.big)[0]
	proxy.setFaults(layer, fault500, fault500, fault500, fault500, fault500)
	_, err := s.Pull(context.Background(), ref)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), layer.String()) {
		t.Errorf("pull: %v; want Unavailable naming %s", err, layer)
	}
	if s.hasBlob(layer, -1) {
		t.Error("layer stored after failures")
	}
}

func TestPullResumesAfterConnectionCut(t *testing.T) {
	f := sharedFixture(t)
	ref, proxy, s := bigLayer(t, f)
	layer := layerDigests(t, f.big)[0]
	proxy.setFaults(layer, faultCut)
	if _, err := s.Pull(context.Background(), ref); err != nil {
		t.Fatalf("pull with a cut connection: %v", err)
	}
	rs := proxy.rangeHeaders()
	if len(rs) != 1 || !strings.HasPrefix(rs[0], "bytes=") || rs[0] == "bytes=0-" {
		t.Errorf("Range headers %q; want one resuming mid-blob", rs)
	}
	verifyStore(t, s)
}

func TestPullCutThenNextPullResumes(t *testing.T) {
	f := sharedFixture(t)
	ref, proxy, s := bigLayer(t, f)
	layer := layerDigests(t, f.big)[0]
	// Every attempt of this pull is cut: it fails, keeping the partial file.
	proxy.setFaults(layer, faultCut, faultCut, faultCut, faultCut)
	if _, err := s.Pull(context.Background(), ref); err == nil {
		t.Fatal("pull succeeded through four cut connections")
	}
	if s.hasBlob(layer, -1) {
		t.Fatal("half-written layer visible in blobs/")
	}
	fi, err := os.Stat(s.ingestPath(layer))
	if err != nil || fi.Size() == 0 {
		t.Fatalf("partial download not kept: %v", err)
	}
	verifyStore(t, s)
	// The next pull completes, resuming the partial download.
	if _, err := s.Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	rs := proxy.rangeHeaders()
	if len(rs) == 0 || !strings.HasPrefix(rs[len(rs)-1], "bytes=") {
		t.Errorf("next pull did not resume with Range: %q", rs)
	}
	verifyStore(t, s)
}

func TestPullTruncatedBlob(t *testing.T) {
	f := sharedFixture(t)
	ref, proxy, s := bigLayer(t, f)
	layer := layerDigests(t, f.big)[0]
	proxy.setFaults(layer, faultTruncate, faultTruncate, faultTruncate, faultTruncate)
	_, err := s.Pull(context.Background(), ref)
	if err == nil || !strings.Contains(err.Error(), layer.String()) {
		t.Fatalf("pull of a truncated blob: %v; want an error naming %s", err, layer)
	}
	if s.hasBlob(layer, -1) {
		t.Error("truncated layer visible in blobs/")
	}
	verifyStore(t, s)
	if _, err := s.Get(context.Background(), ref); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("image recorded after a failed pull: %v", err)
	}
}

func TestPullWrongDigestDiscardsBlob(t *testing.T) {
	f := sharedFixture(t)
	ref, proxy, s := bigLayer(t, f)
	layer := layerDigests(t, f.big)[0]
	proxy.setFaults(layer, faultCorrupt)
	_, err := s.Pull(context.Background(), ref)
	if err == nil || !errors.Is(err, errDigestMismatch) || !strings.Contains(err.Error(), layer.String()) ||
		!strings.Contains(err.Error(), "discarded") {
		t.Fatalf("pull of a corrupt blob: %v; want a digest mismatch naming %s", err, layer)
	}
	if s.hasBlob(layer, -1) {
		t.Error("corrupt layer visible in blobs/")
	}
	if _, err := os.Stat(s.ingestPath(layer)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt partial download kept: %v", err)
	}
	if n := proxy.blobGets(layer); n != 1 {
		t.Errorf("corrupt blob fetched %d times; a fresh mismatch is not retried", n)
	}
	// The registry serves it right next time: the pull succeeds.
	if _, err := s.Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	verifyStore(t, s)
}

func TestPullCancelledLeavesStoreConsistent(t *testing.T) {
	f := sharedFixture(t)
	ref, proxy, s := bigLayer(t, f)
	layer := layerDigests(t, f.big)[0]
	ctx, cancel := context.WithCancel(context.Background())
	// The registry sends half the layer and stalls; the pull is cancelled
	// while the layer is half written.
	proxy.setFaults(layer, faultStall)
	proxy.stalled = make(chan struct{}, 1)
	go func() {
		<-proxy.stalled
		// Let the client write what it received.
		for i := 0; i < 200; i++ {
			if fi, err := os.Stat(s.ingestPath(layer)); err == nil && fi.Size() > 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err := s.Pull(ctx, ref)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull: %v; want context.Canceled", err)
	}
	if s.hasBlob(layer, -1) {
		t.Error("layer visible after a cancelled pull")
	}
	fi, err := os.Stat(s.ingestPath(layer))
	if err != nil || fi.Size() == 0 {
		t.Errorf("partial download not kept for resuming: %v", err)
	}
	verifyStore(t, s)
	if imgs, _ := s.List(context.Background()); len(imgs) != 0 {
		t.Errorf("cancelled pull recorded images: %v", imgs)
	}
	matches, _ := filepath.Glob(filepath.Join(s.Dir(), blobsDir, ".*"))
	if len(matches) != 0 {
		t.Errorf("temporary files among blobs: %v", matches)
	}
	// The next pull resumes the partial download.
	if _, err := s.Pull(context.Background(), ref); err != nil {
		t.Fatalf("pull after cancel: %v", err)
	}
	if rs := proxy.rangeHeaders(); len(rs) != 1 || rs[0] == "bytes=0-" {
		t.Errorf("Range headers %q; want the next pull to resume mid-blob", rs)
	}
	verifyStore(t, s)
}

func TestPullManifest500ThenSuccess(t *testing.T) {
	f := sharedFixture(t)
	ref, proxy, s := bigLayer(t, f)
	proxy.setFaultsKey("manifests/1", fault500, fault500)
	if _, err := s.Pull(context.Background(), ref); err != nil {
		t.Fatalf("pull after two manifest 500s: %v", err)
	}
	proxy.mu.Lock()
	n := proxy.gets["manifests/1"]
	proxy.mu.Unlock()
	if n != 3 {
		t.Errorf("manifest fetched %d times, want 3", n)
	}
}

// TestPullDiskFull writes the layer into /dev/full, which fails every
// write with ENOSPC: the pull fails saying so and leaves nothing behind.
func TestPullDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		testenv.Unavailable(t, "no /dev/full on this system to simulate a full disk")
	}
	f := sharedFixture(t)
	ref, _, s := bigLayer(t, f)
	layer := layerDigests(t, f.big)[0]
	if err := os.Symlink("/dev/full", s.ingestPath(layer)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Pull(context.Background(), ref)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), s.Dir()) {
		t.Fatalf("pull onto a full disk: %v", err)
	}
	if _, err := os.Lstat(s.ingestPath(layer)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file left after ENOSPC: %v", err)
	}
	if s.hasBlob(layer, -1) {
		t.Error("layer visible after ENOSPC")
	}
	verifyStore(t, s)
}

// TestPullRecoversFromStalePartial: a partial download that a dead process
// left behind and that is not a prefix of the blob (a torn write) is
// resumed, fails its digest check, is thrown away, and the blob is fetched
// afresh.
func TestPullRecoversFromStalePartial(t *testing.T) {
	f := sharedFixture(t)
	ref, proxy, s := bigLayer(t, f)
	layer := layerDigests(t, f.big)[0]
	if err := os.WriteFile(s.ingestPath(layer), randomBytes(99, 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(context.Background(), ref); err != nil {
		t.Fatalf("pull over a stale partial download: %v", err)
	}
	if n := proxy.blobGets(layer); n != 2 {
		t.Errorf("layer fetched %d times, want 2 (a resume, then afresh)", n)
	}
	if rs := proxy.rangeHeaders(); len(rs) != 1 || rs[0] != "bytes=100000-" {
		t.Errorf("Range headers %q, want one resuming at 100000", rs)
	}
	verifyStore(t, s)
}
