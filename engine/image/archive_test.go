package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berthvm/berth/engine/errdefs"
)

func TestExportImportRoundTrip(t *testing.T) {
	s, f := pulledStore(t)
	ctx := context.Background()
	bigID := mustConfigName(t, f.big)
	var buf bytes.Buffer
	if err := s.Export(ctx, &buf, f.ref("test/busybox:1"), bigID); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()

	// Our Import reads it back: same IDs, the tag that was named.
	s2 := openTestStore(t)
	imgs, err := s2.Import(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("Import: %d images, want 2", len(imgs))
	}
	got, err := s2.Get(ctx, f.ref("test/busybox:1"))
	if err != nil || got.ID != mustConfigName(t, f.single) {
		t.Errorf("imported busybox: %v, %v", got, err)
	}
	got, err = s2.Get(ctx, bigID)
	if err != nil || len(got.RepoTags) != 0 {
		t.Errorf("imported by-ID image: %+v, %v (want no tags)", got, err)
	}
	img, err := s2.Image(ctx, f.ref("test/busybox:1"))
	if err != nil {
		t.Fatal(err)
	}
	if d := mustDigest(t, img); d != mustDigest(t, f.single) {
		t.Errorf("imported manifest %s, want the registry's %s", d, mustDigest(t, f.single))
	}
	if err := validateLayers(img); err != nil {
		t.Error(err)
	}
	verifyStore(t, s2)

	// go-containerregistry's docker-save reader (docker load semantics)
	// reads it too.
	tag, _ := name.NewTag(f.ref("test/busybox:1"))
	timg, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if id := mustConfigName(t, timg); id != mustConfigName(t, f.single) {
		t.Errorf("tarball reader sees config %s", id)
	}
	if err := validateLayers(timg); err != nil {
		t.Error(err)
	}
	// And it is an OCI layout.
	dir := t.TempDir()
	untar(t, data, dir)
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil || len(im.Manifests) != 2 {
		t.Fatalf("exported index.json: %+v, %v", im, err)
	}
	// Importing twice is harmless.
	if _, err := s2.Import(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}

	// Tags come from manifest.json when index.json carries none (as in
	// tarballs whose OCI index names only bare tags).
	noNames := rewriteTarFunc(t, data, "index.json", func(b []byte) []byte {
		var idx v1.IndexManifest
		if err := json.Unmarshal(b, &idx); err != nil {
			t.Fatal(err)
		}
		for i := range idx.Manifests {
			idx.Manifests[i].Annotations = map[string]string{"org.opencontainers.image.ref.name": "1"}
		}
		out, _ := json.Marshal(idx)
		return out
	})
	s4 := openTestStore(t)
	if _, err := s4.Import(ctx, bytes.NewReader(noNames)); err != nil {
		t.Fatal(err)
	}
	if got, err := s4.Get(ctx, f.ref("test/busybox:1")); err != nil || got.ID != mustConfigName(t, f.single) {
		t.Errorf("tag from manifest.json: %v, %v", got, err)
	}

	// A tarball whose layer does not match its digest is refused.
	layer := layerDigests(t, f.big)[0]
	bad := rewriteTar(t, data, "blobs/sha256/"+layer.Hex, func(b []byte) { b[len(b)/2] ^= 0xff })
	s3 := openTestStore(t)
	_, err = s3.Import(ctx, bytes.NewReader(bad))
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !errors.Is(err, errDigestMismatch) || !strings.Contains(err.Error(), layer.String()) {
		t.Errorf("Import of a corrupt layer: %v", err)
	}
	if s3.hasBlob(layer, -1) {
		t.Error("corrupt layer stored")
	}
	if _, err := s3.Get(ctx, bigID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("image with a corrupt layer recorded: %v", err)
	}
	verifyStore(t, s3)

	if err := s.Export(ctx, io.Discard, "nosuch:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Export unknown: %v", err)
	}
}

func TestImportDockerSaveFromGGCRTarball(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	t1, _ := name.NewTag("example.com/app:1")
	t2, _ := name.NewTag("alpine:saved")
	var buf bytes.Buffer
	if err := tarball.MultiWrite(map[name.Tag]v1.Image{t1: f.single, t2: f.big}, &buf); err != nil {
		t.Fatal(err)
	}
	s := openTestStore(t)
	imgs, err := s.Import(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("%d images", len(imgs))
	}
	for ref, want := range map[string]v1.Image{"example.com/app:1": f.single, "alpine:saved": f.big} {
		got, err := s.Get(ctx, ref)
		if err != nil || got.ID != mustConfigName(t, want) || !slices.Contains(got.RepoTags, ref) {
			t.Errorf("Get(%s) = %+v, %v", ref, got, err)
			continue
		}
		img, err := s.Image(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateLayers(img); err != nil {
			t.Error(err)
		}
	}
	verifyStore(t, s)
}

// TestImportClassicDockerSave loads the pre-25 docker save layout:
// <id>/layer.tar uncompressed, a repeated layer as a symlink.
func TestImportClassicDockerSave(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	ls, err := f.single.Layers()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.single.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data []byte) {
		h.Size = int64(len(data))
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		h.Mode = 0o644
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	var layerFiles []string
	for i, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		dir := []string{"aaa", "bbb"}[i]
		add(&tar.Header{Name: dir + "/layer.tar"}, data)
		layerFiles = append(layerFiles, dir+"/layer.tar")
	}
	// A third directory whose layer.tar links to the first.
	tw.WriteHeader(&tar.Header{Name: "ccc/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../aaa/layer.tar"})
	add(&tar.Header{Name: "cfg.json"}, cfg)
	mj, _ := json.Marshal([]dockerSaveEntry{{Config: "cfg.json", RepoTags: []string{"classic:1"}, Layers: []string{"ccc/layer.tar", layerFiles[1]}}})
	add(&tar.Header{Name: "manifest.json"}, mj)
	tw.Close()

	s := openTestStore(t)
	imgs, err := s.Import(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].ID != mustConfigName(t, f.single) || !slices.Equal(imgs[0].RepoTags, []string{"classic:1"}) {
		t.Fatalf("Import = %+v", imgs)
	}
	img, err := s.Image(ctx, "classic:1")
	if err != nil {
		t.Fatal(err)
	}
	il, _ := img.Layers()
	rc, err := il[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := v1.SHA256(rc)
	rc.Close()
	if h != mustConfigDiffID(t, f.single, 0) {
		t.Errorf("uncompressed layer 0 hashes to %s", h)
	}

	// A layer that does not match the config's diff ID is refused.
	var bad bytes.Buffer
	tw = tar.NewWriter(&bad)
	add = func(h *tar.Header, data []byte) {
		h.Size, h.Mode, h.Typeflag = int64(len(data)), 0o644, tar.TypeReg
		tw.WriteHeader(h)
		tw.Write(data)
	}
	add(&tar.Header{Name: "cfg.json"}, cfg)
	add(&tar.Header{Name: "a/layer.tar"}, []byte("not the layer"))
	add(&tar.Header{Name: "b/layer.tar"}, []byte("nor this"))
	mj, _ = json.Marshal([]dockerSaveEntry{{Config: "cfg.json", Layers: []string{"a/layer.tar", "b/layer.tar"}}})
	add(&tar.Header{Name: "manifest.json"}, mj)
	tw.Close()
	if _, err := s.Import(ctx, &bad); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "a/layer.tar") {
		t.Errorf("Import with a wrong layer: %v", err)
	}
	if _, err := s.Import(ctx, strings.NewReader("not a tarball at all, just text")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Import of junk: %v", err)
	}
}

func mustConfigDiffID(t *testing.T, img v1.Image, i int) v1.Hash {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.RootFS.DiffIDs[i]
}

func TestImportOCILayout(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(f.single, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "example.com/oci/single:2"})); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(f.index, layout.WithAnnotations(map[string]string{"io.containerd.image.name": "docker.io/library/multi:1", "org.opencontainers.image.ref.name": "1"})); err != nil {
		t.Fatal(err)
	}
	data := tarDir(t, dir)
	s := openTestStore(t)
	imgs, err := s.Import(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("%d images", len(imgs))
	}
	if got, err := s.Get(ctx, "example.com/oci/single:2"); err != nil || got.ID != mustConfigName(t, f.single) {
		t.Errorf("single: %v, %v", got, err)
	}
	got, err := s.Get(ctx, "multi:1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Platform.Architecture != hostPlatform.Architecture {
		t.Errorf("multi-arch import chose %+v, want the host's %s", got.Platform, hostPlatform.Architecture)
	}
	verifyStore(t, s)
}

// tarDir tars the regular files under dir.
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

// untar extracts the regular files of a tarball into dir.
func untar(t *testing.T, data []byte, dir string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rewriteTar returns data with the content of entry changed in place by edit.
func rewriteTar(t *testing.T, data []byte, entry string, edit func([]byte)) []byte {
	t.Helper()
	return rewriteTarFunc(t, data, entry, func(b []byte) []byte { edit(b); return b })
}

// rewriteTarFunc returns data with the content of entry replaced by edit's.
func rewriteTarFunc(t *testing.T, data []byte, entry string, edit func([]byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(data))
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Name == entry {
			b = edit(b)
			h.Size = int64(len(b))
			found = true
		}
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	if !found {
		t.Fatalf("no %s in the tarball", entry)
	}
	return out.Bytes()
}
