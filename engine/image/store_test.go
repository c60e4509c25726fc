package image

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/berthvm/berth/engine/errdefs"
)

func TestParseReferenceAndFamiliarName(t *testing.T) {
	for _, tc := range []struct{ in, canon, familiar string }{
		{"alpine", "docker.io/library/alpine:latest", "alpine:latest"},
		{"alpine:3.20", "docker.io/library/alpine:3.20", "alpine:3.20"},
		{"user/app:1", "docker.io/user/app:1", "user/app:1"},
		{"docker.io/library/alpine@sha256:" + strings.Repeat("a", 64), "docker.io/library/alpine@sha256:" + strings.Repeat("a", 64), "alpine@sha256:" + strings.Repeat("a", 64)},
		{"index.docker.io/library/alpine:edge", "docker.io/library/alpine:edge", "alpine:edge"},
		{"localhost:5000/x:y", "localhost:5000/x:y", "localhost:5000/x:y"},
		{"ghcr.io/o/r", "ghcr.io/o/r:latest", "ghcr.io/o/r:latest"},
	} {
		r, err := ParseReference(tc.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tc.in, err)
			continue
		}
		if c := canonical(r); c != tc.canon {
			t.Errorf("canonical(%q) = %q, want %q", tc.in, c, tc.canon)
		}
		if f := FamiliarName(canonical(r)); f != tc.familiar {
			t.Errorf("FamiliarName(%q) = %q, want %q", tc.in, f, tc.familiar)
		}
	}
	for _, bad := range []string{"", "UPPER", "a:b:c", "x@sha256:123", "..", "../../etc/passwd", "a//b", "a/../b",
		"./a", "/a", "a/", "a..b", "a_-b", "-a", "a-", "localhost:5000//x", "x:" + strings.Repeat("t", 129), strings.Repeat("a/", 128) + "a"} {
		_, err := ParseReference(bad)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseReference(%q) = %v; want InvalidArgument", bad, err)
			continue
		}
		if bad != "" && !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseReference(%q) = %v; want the error to name the reference", bad, err)
		}
	}
	for _, good := range []string{"a__b/c-d/e.f:1.0_x", "a---b", "[::1]:5000/x", "my.registry-1.io:443/x/y", "x:" + strings.Repeat("t", 128)} {
		if _, err := ParseReference(good); err != nil {
			t.Errorf("ParseReference(%q) = %v; want it accepted", good, err)
		}
	}
}

// pulledStore returns a store holding test/busybox:1 and test/big:1.
func pulledStore(t *testing.T, opts ...Option) (*Store, *fixture) {
	t.Helper()
	f := sharedFixture(t)
	s := openTestStore(t, opts...)
	for _, r := range []string{"test/busybox:1", "test/big:1"} {
		if _, err := s.Pull(context.Background(), f.ref(r)); err != nil {
			t.Fatal(err)
		}
	}
	return s, f
}

func TestListInspectTag(t *testing.T) {
	s, f := pulledStore(t)
	ctx := context.Background()
	imgs, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("List: %d images, want 2", len(imgs))
	}
	// Newest first (by config Created).
	if imgs[0].ID != mustConfigName(t, f.big) || imgs[1].ID != mustConfigName(t, f.single) {
		t.Errorf("List order: %s, %s", imgs[0].ID, imgs[1].ID)
	}
	for _, img := range imgs {
		if img.Size <= 0 || img.Created.IsZero() || img.Labels["org.berth.test"] != "yes" || len(img.RepoTags) != 1 || len(img.RepoDigests) != 1 {
			t.Errorf("List entry %+v", img)
		}
	}
	id := mustConfigName(t, f.single)
	hex := strings.TrimPrefix(id, "sha256:")
	for _, q := range []string{f.ref("test/busybox:1"), id, hex, hex[:12], "sha256:" + hex[:8], f.ref("test/busybox@") + mustDigest(t, f.single).String()} {
		img, err := s.Get(ctx, q)
		if err != nil || img.ID != id {
			t.Errorf("Get(%q) = %v, %v; want %s", q, img, err, id)
		}
	}
	if _, err := s.Get(ctx, "sha256:"+strings.Repeat("f", 64)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get unknown ID: %v", err)
	}

	// Tag, then the new tag resolves and lists; re-tagging moves it.
	if err := s.Tag(ctx, id, "alpine:mine"); err != nil {
		t.Fatal(err)
	}
	img, err := s.Get(ctx, "alpine:mine")
	if err != nil || img.ID != id || !slices.Contains(img.RepoTags, "alpine:mine") {
		t.Fatalf("after Tag: %+v, %v", img, err)
	}
	if img, _ := s.Get(ctx, "docker.io/library/alpine:mine"); img == nil || img.ID != id {
		t.Error("tag not found by its canonical name")
	}
	if err := s.Tag(ctx, f.ref("test/big:1"), "alpine:mine"); err != nil {
		t.Fatal(err)
	}
	if img, _ := s.Get(ctx, "alpine:mine"); img == nil || img.ID != mustConfigName(t, f.big) {
		t.Error("tag did not move")
	}
	if err := s.Tag(ctx, id, "x@sha256:"+strings.Repeat("a", 64)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Tag with a digest: %v", err)
	}
	if err := s.Tag(ctx, "nosuch", "x:y"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Tag of an unknown image: %v", err)
	}

	// The directory is locked while the store is open.
	if _, err := Open(s.Dir()); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("second Open of an open store: %v; want Conflict", err)
	}
	// The references survive reopening the store.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if img, err := s2.Get(ctx, "alpine:mine"); err != nil || img.ID != mustConfigName(t, f.big) {
		t.Errorf("after reopen: %v, %v", img, err)
	}
	// The store is an OCI layout go-containerregistry reads, with an
	// index entry per tag.
	lp, err := layout.FromPath(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	ii, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, d := range im.Manifests {
		names[d.Annotations["io.containerd.image.name"]] = true
		if _, err := lp.Image(d.Digest); err != nil {
			t.Errorf("layout image %s: %v", d.Digest, err)
		}
	}
	for _, n := range []string{"docker.io/library/alpine:mine", f.ref("test/busybox:1"), f.ref("test/big:1")} {
		if !names[n] {
			t.Errorf("index.json lacks %s: %v", n, names)
		}
	}
}

func TestRemove(t *testing.T) {
	var removed []string
	var changes []Change
	inUse := map[string]bool{}
	s, f := pulledStore(t, WithRemoveHook(func(id string) { removed = append(removed, id) }), WithInUse(func(id string) bool { return inUse[id] }),
		WithChangeHook(func(c Change) { changes = append(changes, c) }))
	ctx := context.Background()
	id := mustConfigName(t, f.single)
	if err := s.Tag(ctx, id, "extra:1"); err != nil {
		t.Fatal(err)
	}
	// By ID with two tags: needs force.
	if _, err := s.Remove(ctx, id); !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "must be forced") {
		t.Errorf("Remove by ID with two tags: %v; want Conflict", err)
	}
	// Untag one: image stays.
	items, err := s.Remove(ctx, "extra:1")
	if err != nil || len(items) != 1 || items[0].Untagged != "extra:1" {
		t.Fatalf("Remove extra:1 = %+v, %v", items, err)
	}
	if len(removed) != 0 {
		t.Error("remove hook called for an untag")
	}
	// In use: the last tag cannot go without force.
	inUse[id] = true
	ref := f.ref("test/busybox:1")
	if _, err := s.Remove(ctx, ref); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Remove of an image in use: %v; want Conflict", err)
	}
	inUse[id] = false
	items, err = s.Remove(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	want := []DeleteItem{{Untagged: ref}, {Untagged: f.ref("test/busybox@") + mustDigest(t, f.single).String()}, {Deleted: id}}
	if !slices.Equal(items, want) {
		t.Errorf("Remove = %+v, want %+v", items, want)
	}
	if !slices.Equal(removed, []string{id}) {
		t.Errorf("remove hook got %v", removed)
	}
	bigID := mustConfigName(t, f.big)
	wantChanges := []Change{
		{ActionPull, id, ref}, {ActionPull, bigID, f.ref("test/big:1")},
		{ActionTag, id, "extra:1"}, {ActionUntag, id, "extra:1"},
		{ActionUntag, id, ref}, {ActionUntag, id, want[1].Untagged}, {ActionDelete, id, ""},
	}
	if !slices.Equal(changes, wantChanges) {
		t.Errorf("changes:\n%v\nwant\n%v", changes, wantChanges)
	}
	if _, err := s.Get(ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	// Its unshared blobs are gone; the other image still reads whole.
	for _, l := range layerDigests(t, f.single) {
		if s.hasBlob(l, -1) {
			t.Errorf("layer %s left after Remove", l)
		}
	}
	img, err := s.Image(ctx, f.ref("test/big:1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validateLayers(img); err != nil {
		t.Error(err)
	}
	if _, err := s.Remove(ctx, "nosuch:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Remove unknown: %v", err)
	}
}

// validateLayers reads every layer of img through its digest check.
func validateLayers(img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		h, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if d, _ := l.Digest(); d != h {
			return errors.New("layer " + d.String() + " reads as " + h.String())
		}
	}
	return nil
}

func TestPrune(t *testing.T) {
	var removed []string
	s, f := pulledStore(t, WithRemoveHook(func(id string) { removed = append(removed, id) }))
	ctx := context.Background()
	// Make test/busybox dangling by moving its only tag away.
	if err := s.Tag(ctx, f.ref("test/big:1"), f.ref("test/busybox:1")); err != nil {
		t.Fatal(err)
	}
	// A stray partial download and an unreferenced blob.
	if err := os.WriteFile(s.ingestPath(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("1", 64)}), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	stray := []byte("unreferenced")
	h, n, _ := v1.SHA256(strings.NewReader(string(stray)))
	if err := s.putBlob(ctx, v1.Descriptor{Digest: h, Size: n}, stray); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := mustConfigName(t, f.single)
	if !slices.Contains(rep.ImagesDeleted, DeleteItem{Deleted: id}) || rep.SpaceReclaimed == 0 {
		t.Errorf("Prune = %+v", rep)
	}
	if s.hasBlob(h, -1) {
		t.Error("unreferenced blob survived Prune")
	}
	if entries, _ := os.ReadDir(filepath.Join(s.Dir(), ingestDir)); len(entries) != 0 {
		t.Errorf("ingest not emptied: %v", entries)
	}
	if !slices.Equal(removed, []string{id}) {
		t.Errorf("remove hook got %v", removed)
	}
	imgs, _ := s.List(ctx)
	if len(imgs) != 1 || imgs[0].ID != mustConfigName(t, f.big) {
		t.Errorf("after Prune: %v", imgs)
	}
	// PruneAll removes tagged images too.
	rep, err = s.Prune(ctx, PruneAll())
	if err != nil || len(rep.ImagesDeleted) == 0 {
		t.Fatalf("Prune all = %+v, %v", rep, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.Dir(), blobsDir)); len(entries) != 0 {
		t.Errorf("blobs left after pruning everything: %d", len(entries))
	}
}

func TestOpenCleansStaleTempFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A new store is already a (empty) valid OCI image layout.
	if p, err := layout.FromPath(dir); err != nil {
		t.Error(err)
	} else if ii, err := p.ImageIndex(); err != nil {
		t.Error(err)
	} else if im, err := ii.IndexManifest(); err != nil || len(im.Manifests) != 0 {
		t.Errorf("new store's index: %+v, %v", im, err)
	}
	stale := []string{
		filepath.Join(s.Dir(), ".repositories.json.tmp-123"),
		filepath.Join(s.Dir(), blobsDir, ".x.tmp-1"),
	}
	for _, p := range stale {
		if err := os.WriteFile(p, []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(s.Dir(), ingestDir, ".import-9", "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, p := range append(stale, filepath.Join(s.Dir(), ingestDir, ".import-9")) {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Open: %v", p, err)
		}
	}
}

// TestInUseHookMayCallStore: the in-use hook is asked without the store's
// lock held, so a hook that reads the store (or takes a container
// manager's lock while another goroutine in that manager reads the store)
// does not deadlock.
func TestInUseHookMayCallStore(t *testing.T) {
	var s *Store
	asked := 0
	s, f := pulledStore(t, WithInUse(func(id string) bool {
		asked++
		if _, err := s.Get(context.Background(), id); err != nil {
			t.Errorf("hook: Get(%s): %v", id, err)
		}
		return false
	}))
	ctx := context.Background()
	if _, err := s.Remove(ctx, f.ref("test/busybox:1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, f.ref("test/big:1"), "other:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, f.ref("test/big:1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, PruneAll()); err != nil {
		t.Fatal(err)
	}
	if asked < 2 {
		t.Errorf("in-use hook asked %d times", asked)
	}
	if imgs, _ := s.List(ctx); len(imgs) != 0 {
		t.Errorf("images left: %d", len(imgs))
	}
}

// TestRemoveDuringPullKeepsSharedLayer removes an image while a pull of
// another image that shares its busybox layer is under way: the layer
// the pull counts on stays.
func TestRemoveDuringPullKeepsSharedLayer(t *testing.T) {
	f := sharedFixture(t)
	proxy := newFakeFaultyRegistry(t, f.reg.Host)
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.Pull(ctx, proxy.Host+"/test/busybox:1"); err != nil {
		t.Fatal(err)
	}
	variant := map[string]v1.Image{"amd64": f.amd64, "arm64": f.arm64}[hostPlatform.Architecture]
	if variant == nil {
		t.Skipf("skipping: the multi-arch test image has no %s variant", hostPlatform.Architecture)
	}
	shared := layerDigests(t, f.single)[0]
	vl := layerDigests(t, variant)
	if vl[0] != shared {
		t.Fatalf("test images do not share their busybox layer: %s vs %s", vl[0], shared)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	proxy.setHook(func(d string) {
		if d == vl[1].String() {
			close(entered)
			<-release
		}
	})
	done := make(chan error, 1)
	go func() {
		_, err := s.Pull(ctx, proxy.Host+"/test/multi:1")
		done <- err
	}()
	<-entered
	if _, err := s.Remove(ctx, proxy.Host+"/test/busybox:1"); err != nil {
		t.Fatal(err)
	}
	if !s.hasBlob(shared, -1) {
		t.Error("shared layer deleted while a pull needed it")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	img, err := s.Image(ctx, proxy.Host+"/test/multi:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := validateLayers(img); err != nil {
		t.Error(err)
	}
}

func TestOpenRefusesCorruptDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, dbFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), dbFile) {
		t.Errorf("Open over a corrupt %s: %v", dbFile, err)
	}
}

// TestConcurrentOperations runs pulls, removes, prunes, lists and exports
// at once (run it with -race); afterwards the store is whole.
func TestConcurrentOperations(t *testing.T) {
	f := sharedFixture(t)
	s := openTestStore(t)
	ctx := context.Background()
	refs := []string{f.ref("test/busybox:1"), f.ref("test/big:1"), f.ref("test/multi:1")}
	var wg sync.WaitGroup
	errc := make(chan error, 100)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				ref := refs[(w+i)%len(refs)]
				if _, err := s.Pull(ctx, ref); err != nil {
					errc <- err
					return
				}
				switch (w + i) % 4 {
				case 0:
					if _, err := s.Remove(ctx, ref); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
						errc <- err
					}
				case 1:
					if _, err := s.Prune(ctx); err != nil {
						errc <- err
					}
				case 2:
					if _, err := s.List(ctx); err != nil {
						errc <- err
					}
				case 3:
					if err := s.Export(ctx, io.Discard, ref); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
						errc <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for _, ref := range refs {
		if _, err := s.Pull(ctx, ref); err != nil {
			t.Fatal(err)
		}
		img, err := s.Image(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateLayers(img); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}
	verifyStore(t, s)
}

func TestCheckoutKeepsBlobsUntilRelease(t *testing.T) {
	s, f := pulledStore(t)
	ctx := context.Background()
	ref := f.ref("test/busybox:1")
	img, release, err := s.Checkout(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if err := validateLayers(img); err != nil {
		t.Errorf("checked-out image unreadable after Remove: %v", err)
	}
	release()
	release() // twice is harmless
	if _, err := s.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	for _, l := range layerDigests(t, f.single) {
		if s.hasBlob(l, -1) {
			t.Errorf("layer %s kept after release and Prune", l)
		}
	}
	if _, _, err := s.Checkout(ctx, ref); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Checkout of a removed image: %v", err)
	}
}
