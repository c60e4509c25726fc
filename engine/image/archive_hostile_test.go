package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/testenv"
)

// dockerSaveTar returns a docker save tarball (go-containerregistry's
// writer, as docker load reads it) of a small random image tagged tag.
func dockerSaveTar(t *testing.T, tag string) (v1.Image, []byte) {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarball.Write(ref, img, &buf); err != nil {
		t.Fatal(err)
	}
	return img, buf.Bytes()
}

// withMembers returns the tarball data with extra members written before
// (first) or after its own.
func withMembers(t *testing.T, data []byte, first bool, extra ...*tar.Header) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	add := func() {
		for _, h := range extra {
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			}
		}
	}
	if first {
		add()
	}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.Copy(tw, tr)
	}
	if !first {
		add()
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// assertEmptyStore fails unless s holds no image, no blob and no leftover
// of the import.
func assertEmptyStore(t *testing.T, s *Store) {
	t.Helper()
	if imgs, err := s.List(context.Background()); err != nil || len(imgs) != 0 {
		t.Errorf("store holds %d images (%v); want none", len(imgs), err)
	}
	for _, d := range []string{blobsDir, ingestDir} {
		entries, _ := os.ReadDir(filepath.Join(s.Dir(), d))
		for _, e := range entries {
			t.Errorf("%s/%s left in the store", d, e.Name())
		}
	}
}

func TestImportRefusesMembersOutsideTheArchive(t *testing.T) {
	_, data := dockerSaveTar(t, "example.com/app:1")
	for _, bad := range []string{"../x", "/etc/x", "a/../../x", "./../x"} {
		for _, first := range []bool{true, false} {
			s := openTestStore(t)
			hostile := withMembers(t, data, first, &tar.Header{Name: bad, Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
			_, err := s.Import(context.Background(), bytes.NewReader(hostile))
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"`+bad+`"`) {
				t.Errorf("Import with member %q (first=%v) = %v; want InvalidArgument naming the member", bad, first, err)
			}
			assertEmptyStore(t, s)
		}
	}
}

func TestImportMalformedArchiveNamesTheMember(t *testing.T) {
	_, data := dockerSaveTar(t, "example.com/app:1")
	for _, members := range [][]*tar.Header{
		{{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}, {Name: "x/y", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
		{{Name: "d/y", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}, {Name: "d", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
	} {
		s := openTestStore(t)
		_, err := s.Import(context.Background(), bytes.NewReader(withMembers(t, data, false, members...)))
		second := members[1].Name
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"`+second+`"`) {
			t.Errorf("Import of %s then %s = %v; want InvalidArgument naming %q", members[0].Name, second, err, second)
		}
		if err != nil && (strings.Contains(err.Error(), ".import-") || strings.Contains(err.Error(), s.Dir())) {
			t.Errorf("error exposes an internal path: %v", err)
		}
		assertEmptyStore(t, s)
	}
}

func TestImportCompressedArchives(t *testing.T) {
	img, data := dockerSaveTar(t, "example.com/app:1")
	want, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	compressors := map[string]func([]byte) []byte{
		"gzip": func(b []byte) []byte {
			var out bytes.Buffer
			zw := gzip.NewWriter(&out)
			zw.Write(b)
			zw.Close()
			return out.Bytes()
		},
		"xz": func(b []byte) []byte {
			var out bytes.Buffer
			zw, err := xz.NewWriter(&out)
			if err != nil {
				t.Fatal(err)
			}
			zw.Write(b)
			zw.Close()
			return out.Bytes()
		},
		"zstd": func(b []byte) []byte {
			zw, err := zstd.NewWriter(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer zw.Close()
			return zw.EncodeAll(b, nil)
		},
		"bzip2": func(b []byte) []byte {
			// The standard library reads bzip2 but cannot write it.
			cmd := exec.Command(testenv.RequireCommand(t, "bzip2", "bzip2"), "-c")
			cmd.Stdin = bytes.NewReader(b)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			return out
		},
	}
	for kind, compress := range compressors {
		t.Run(kind, func(t *testing.T) {
			s := openTestStore(t)
			imgs, err := s.Import(context.Background(), bytes.NewReader(compress(data)))
			if err != nil {
				t.Fatalf("Import of a %s-compressed docker save tarball: %v", kind, err)
			}
			if len(imgs) != 1 || imgs[0].ID != want.String() || !slices.Equal(imgs[0].RepoTags, []string{"example.com/app:1"}) {
				t.Fatalf("Import = %+v; want %s tagged example.com/app:1", imgs, want)
			}
			verifyStore(t, s)
		})
	}
	s := openTestStore(t)
	trunc := compressors["gzip"](data)
	if _, err := s.Import(context.Background(), bytes.NewReader(trunc[:len(trunc)/2])); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Import of a truncated gzip archive = %v; want InvalidArgument", err)
	}
	assertEmptyStore(t, s)
}

func TestImportReportsOnlyTheArchivesTags(t *testing.T) {
	ctx := context.Background()
	img, data := dockerSaveTar(t, "example.com/app:1")
	id, _ := img.ConfigName()
	s := openTestStore(t)
	if _, err := s.Import(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, id.String(), "other:2"); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.Import(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || !slices.Equal(imgs[0].RepoTags, []string{"example.com/app:1"}) {
		t.Errorf("second Import reports %+v; want only the archive's tag example.com/app:1", imgs)
	}
	if got, err := s.Get(ctx, id.String()); err != nil || !slices.Equal(slices.Sorted(slices.Values(got.RepoTags)), []string{"example.com/app:1", "other:2"}) {
		t.Errorf("stored image: %+v, %v; want both tags kept", got, err)
	}
}

func TestReferencesOutsideTheGrammarAreRefused(t *testing.T) {
	ctx := context.Background()
	for _, bad := range []string{"../../etc/passwd", "a//b", ".."} {
		// Through docker save's manifest.json.
		_, data := dockerSaveTar(t, "example.com/app:1")
		data = rewriteTarFunc(t, data, "manifest.json", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"example.com/app:1"`), []byte(`"`+bad+`"`), 1)
		})
		s := openTestStore(t)
		_, err := s.Import(ctx, bytes.NewReader(data))
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), bad) {
			t.Errorf("Import tagged %q = %v; want InvalidArgument naming it", bad, err)
		}
		assertEmptyStore(t, s)

		// Through Tag.
		img, data := dockerSaveTar(t, "example.com/app:1")
		if _, err := s.Import(ctx, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		id, _ := img.ConfigName()
		if err := s.Tag(ctx, id.String(), bad); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), bad) {
			t.Errorf("Tag %q = %v; want InvalidArgument naming it", bad, err)
		}
		if got, _ := s.Get(ctx, id.String()); got == nil || len(got.RepoTags) != 1 {
			t.Errorf("after a refused tag the image has %+v", got)
		}
		// Through Pull (refused before any network).
		if _, err := s.Pull(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), bad) {
			t.Errorf("Pull %q = %v; want InvalidArgument naming it", bad, err)
		}
	}
}

// endlessTar is a tar stream of one member that claims a terabyte; it
// cancels the import's context once limit bytes have been read.
type endlessTar struct {
	hdr    []byte
	n      int64
	limit  int64
	cancel func()
}

func (e *endlessTar) Read(p []byte) (int, error) {
	if len(e.hdr) > 0 {
		n := copy(p, e.hdr)
		e.hdr = e.hdr[n:]
		return n, nil
	}
	e.n += int64(len(p))
	if e.n >= e.limit {
		e.cancel()
	}
	clear(p)
	return len(p), nil
}

func TestImportStopsWhenCancelledMidway(t *testing.T) {
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	tw.WriteHeader(&tar.Header{Name: "blobs/sha256/huge", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &endlessTar{hdr: hdr.Bytes(), limit: 8 << 20, cancel: cancel}
	s := openTestStore(t)
	_, err := s.Import(ctx, src)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Import cancelled after 8 MiB of a 1 TiB member = %v; want context.Canceled", err)
	}
	if src.n > 16<<20 {
		t.Errorf("Import read %d bytes after the cancellation at 8 MiB", src.n)
	}
	assertEmptyStore(t, s)
}

func TestHashingHonoursCancellation(t *testing.T) {
	// A layer file of a docker save tarball already on disk: hashing it
	// stops with the context.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "layer.tar"), make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	tree := &importTree{dir: dir, links: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := layerFileDescriptor(ctx, tree, "layer.tar", v1.Hash{}); !errors.Is(err, context.Canceled) {
		t.Errorf("layerFileDescriptor with a cancelled context = %v; want context.Canceled", err)
	}
}

func TestImportMissingMembersNameThemNotTheStore(t *testing.T) {
	_, data := dockerSaveTar(t, "example.com/app:1")
	for _, missing := range []string{"nosuch.json", "../../etc/passwd", "/etc/passwd", "blobs"} {
		broken := rewriteTarFunc(t, data, "manifest.json", func(b []byte) []byte {
			var m []dockerSaveEntry
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m[0].Config = missing
			out, _ := json.Marshal(m)
			return out
		})
		s := openTestStore(t)
		_, err := s.Import(context.Background(), bytes.NewReader(broken))
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), missing) {
			t.Errorf("Import with config %q = %v; want InvalidArgument naming it", missing, err)
		}
		if err != nil && (strings.Contains(err.Error(), ".import-") || strings.Contains(err.Error(), s.Dir())) {
			t.Errorf("error exposes an internal path: %v", err)
		}
		assertEmptyStore(t, s)
	}
}

func TestImportRefusesBadReferencesInAnOCIIndex(t *testing.T) {
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../../etc/passwd:1", "a//b:1", "example.com/UPPER:1"} {
		dir := t.TempDir()
		p, err := layout.Write(dir, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"io.containerd.image.name": bad})); err != nil {
			t.Fatal(err)
		}
		s := openTestStore(t)
		_, err = s.Import(context.Background(), bytes.NewReader(tarDir(t, dir)))
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), bad) {
			t.Errorf("Import of an OCI layout naming %q = %v; want InvalidArgument naming it", bad, err)
		}
		assertEmptyStore(t, s)
	}
}
