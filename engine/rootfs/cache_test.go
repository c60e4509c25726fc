package rootfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"

	"github.com/berthvm/berth/engine/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// countingImage counts how often its layers are listed, that is how often
// an image is built from it.
type countingImage struct {
	v1.Image
	builds *atomic.Int32
	delay  time.Duration
}

func (c countingImage) Layers() ([]v1.Layer, error) {
	c.builds.Add(1)
	time.Sleep(c.delay)
	return c.Image.Layers()
}

func testImage(t *testing.T, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		b := l
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		})
		mustDo(t, err)
		img, err = mutate.AppendLayers(img, layer)
		mustDo(t, err)
	}
	return img
}

func TestCacheEnsureCloneRemove(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCache(dir)
	mustDo(t, err)
	base := testImage(t,
		gzipped(t, mkTar(t, dir_("etc"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), file("big", strings.Repeat("data", 300000)))),
		zstded(t, mkTar(t, file("etc/hostname", "berth\n"), file(".wh.big", ""))),
	)
	var builds atomic.Int32
	img := countingImage{Image: base, builds: &builds, delay: 200 * time.Millisecond}
	d, err := img.Digest()
	mustDo(t, err)

	// Stale temporary file from a crashed build.
	stale := filepath.Join(dir, "."+baseName(d)+".tmp-12345")
	mustDo(t, os.WriteFile(stale, []byte("half"), 0o600))

	if c.Has(d) {
		t.Fatal("Has before Ensure")
	}
	if err := c.Clone(bg, d, filepath.Join(t.TempDir(), "x")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Clone before Ensure: %v", err)
	}
	var wg sync.WaitGroup
	paths := make([]string, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = c.Ensure(bg, img)
		}()
	}
	wg.Wait()
	for i := range 4 {
		mustDo(t, errs[i])
		if paths[i] != c.Path(d) {
			t.Errorf("Ensure returned %s, want %s", paths[i], c.Path(d))
		}
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("built %d times, want once", n)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary file still there: %v", err)
	}
	testenv.Fsck(t, c.Path(d))
	if _, err := c.Ensure(bg, img); err != nil || builds.Load() != 1 {
		t.Errorf("second Ensure: %v, %d builds", err, builds.Load())
	}

	// Clones are full, independent, sparse images.
	cdir := t.TempDir()
	clone := filepath.Join(cdir, "rootfs.ext4")
	mustDo(t, c.Clone(bg, d, clone))
	testenv.Fsck(t, clone)
	b, err := ReadFile(clone, "/etc/hostname")
	if err != nil || string(b) != "berth\n" {
		t.Errorf("clone /etc/hostname: %q %v", b, err)
	}
	if _, err := ReadFile(clone, "/big"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("whited-out /big in clone: %v", err)
	}
	src, _ := os.Stat(c.Path(d))
	dst, _ := os.Stat(clone)
	if src.Size() != dst.Size() {
		t.Errorf("clone size %d, base %d", dst.Size(), src.Size())
	}
	if src.Mode().Perm() != 0o600 || dst.Mode().Perm() != 0o600 {
		t.Errorf("base image mode %v, clone %v; want both 0600 (a root filesystem is its owner's only)", src.Mode(), dst.Mode())
	}
	if used := dst.Sys().(*syscall.Stat_t).Blocks * 512; used > 64<<20 {
		t.Errorf("clone of a %d byte image uses %d bytes: holes not kept", dst.Size(), used)
	}
	if err := c.Clone(bg, d, clone); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("Clone onto an existing file: %v", err)
	}

	mustDo(t, c.Remove(d))
	if c.Has(d) {
		t.Error("Has after Remove")
	}
	mustDo(t, c.Remove(d)) // twice is fine
	if _, err := os.Stat(clone); err != nil {
		t.Errorf("clone gone with its base: %v", err)
	}
}

func TestCachePrune(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCache(dir)
	mustDo(t, err)
	a := testImage(t, mkTar(t, file("a", "a")))
	b := testImage(t, mkTar(t, file("b", "b")))
	da, _ := a.Digest()
	db, _ := b.Digest()
	pa, err := c.Ensure(bg, a)
	mustDo(t, err)
	pb, err := c.Ensure(bg, b)
	mustDo(t, err)
	testenv.Fsck(t, pa)
	testenv.Fsck(t, pb)
	old := filepath.Join(dir, "sha256-"+strings.Repeat("0", 64)+".v0.ext4")
	mustDo(t, os.WriteFile(old, nil, 0o600))
	removed, err := c.Prune(bg, func(h v1.Hash) bool { return h == da })
	mustDo(t, err)
	if !c.Has(da) || c.Has(db) {
		t.Errorf("after prune: has a=%v b=%v", c.Has(da), c.Has(db))
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("image of an old writer version kept")
	}
	if len(removed) != 2 {
		t.Errorf("removed %v, want b and the old version", removed)
	}
}

func TestCacheCancelledBuild(t *testing.T) {
	c, err := NewCache(t.TempDir())
	mustDo(t, err)
	var builds atomic.Int32
	img := countingImage{Image: testImage(t, mkTar(t, file("a", "a"))), builds: &builds}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := c.Ensure(ctx, img); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ensure with a cancelled context: %v", err)
	}
	d, _ := img.Digest()
	if c.Has(d) {
		t.Error("image built despite cancellation")
	}
	entries, _ := os.ReadDir(c.dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// TestNewCacheRemovesAbandonedBuilds leaves what a daemon SIGKILLed in
// the middle of two builds leaves (the temporary images, their unlocked
// lock files) next to a build still running in another process (its lock
// held), and opens the cache.
func TestNewCacheRemovesAbandonedBuilds(t *testing.T) {
	dir := t.TempDir()
	mustDo(t, os.Chmod(dir, 0o755))
	dead := []string{
		"." + baseName(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}) + ".tmp-123",
		"." + baseName(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}) + ".tmp-456",
	}
	for i, n := range dead {
		mustDo(t, os.WriteFile(filepath.Join(dir, n), []byte("half an image"), 0o644))
		if i == 0 {
			mustDo(t, os.WriteFile(filepath.Join(dir, strings.TrimPrefix(n[:strings.Index(n, tempMarker)], "."))+".lock", nil, 0o600))
		}
	}
	liveBase := baseName(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("c", 64)})
	live := filepath.Join(dir, "."+liveBase+".tmp-789")
	mustDo(t, os.WriteFile(live, []byte("being built"), 0o600))
	unlock, err := lockFile(bg, filepath.Join(dir, liveBase+".lock"))
	mustDo(t, err)
	defer unlock()
	other := filepath.Join(dir, "notes.tmp-1") // not a name the cache makes
	mustDo(t, os.WriteFile(other, nil, 0o600))

	c, err := NewCache(dir)
	mustDo(t, err)
	for _, n := range dead {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("abandoned build %s survived NewCache: %v", n, err)
		}
	}
	for _, p := range []string{live, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed by NewCache: %v", filepath.Base(p), err)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache dir %v, %v; want mode 0700", fi, err)
	}
	unlock()
	if _, err := c.Prune(bg, func(v1.Hash) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live); !os.IsNotExist(err) {
		t.Errorf("build abandoned after NewCache survived Prune: %v", err)
	}
}

// TestLockFileExcludes checks the cross-process build lock: a second
// holder (another open file description, as another process has) waits.
func TestLockFileExcludes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lockFile(bg, p)
	mustDo(t, err)
	ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
	defer cancel()
	if _, err := lockFile(ctx, p); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: %v", err)
	}
	unlock()
	unlock2, err := lockFile(bg, p)
	mustDo(t, err)
	unlock2()
}

func TestSparseCopyKeepsHoles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	mustDo(t, err)
	mustDo(t, f.Truncate(128<<20))
	_, err = f.WriteAt([]byte("head"), 0)
	mustDo(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte("m"), 3<<20), 64<<20)
	mustDo(t, err)
	_, err = f.WriteAt(make([]byte, 1<<20), 10<<20) // written zeros become a hole
	mustDo(t, err)
	_, err = f.WriteAt([]byte("tail"), 128<<20-4)
	mustDo(t, err)
	mustDo(t, f.Close())
	s, err := os.Open(src)
	mustDo(t, err)
	defer s.Close()
	d, err := os.Create(filepath.Join(dir, "dst"))
	mustDo(t, err)
	defer d.Close()
	mustDo(t, sparseCopy(bg, d, s))
	got, err := os.ReadFile(d.Name())
	mustDo(t, err)
	want, err := os.ReadFile(src)
	mustDo(t, err)
	if !bytes.Equal(got, want) {
		t.Fatal("copy differs")
	}
	fi, _ := d.Stat()
	if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > 4<<20 {
		t.Errorf("copy uses %d bytes, want about 3 MiB", used)
	}
}

// dir_ avoids shadowing the dir variables of the tests above.
func dir_(name string) ent { return dir(name) }

func TestUnpackImage(t *testing.T) {
	img := testImage(t,
		gzipped(t, mkTar(t, dir_("etc"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\nbob:x:7:8::/:/bin/sh\n"))),
		zstded(t, mkTar(t, file("etc/motd", "hi"))),
	)
	out := filepath.Join(t.TempDir(), "out.ext4")
	mustDo(t, Unpack(bg, img, out, 300<<20))
	fi, err := os.Stat(out)
	mustDo(t, err)
	if fi.Size() != 300<<20 || fi.Mode().Perm() != 0o600 {
		t.Errorf("image %d bytes, mode %v; want %d, 0600", fi.Size(), fi.Mode(), 300<<20)
	}
	testenv.Fsck(t, out)
	uid, gid, _, err := LookupUser(bg, out, "bob")
	if err != nil || uid != 7 || gid != 8 {
		t.Errorf("bob: %d:%d %v", uid, gid, err)
	}
	if b, err := ReadFile(out, "/etc/motd"); err != nil || string(b) != "hi" {
		t.Errorf("/etc/motd: %q %v", b, err)
	}

	small := filepath.Join(t.TempDir(), "small.ext4")
	if err := Unpack(bg, img, small, 4<<20); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Unpack into 4 MiB: %v, want invalid argument", err)
	}
	if _, err := os.Stat(small); !os.IsNotExist(err) {
		t.Error("too-small image left behind")
	}
}
