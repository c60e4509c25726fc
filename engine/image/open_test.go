package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestOpenSweepsWhatAKilledProcessLeft leaves in a store what a daemon
// SIGKILLed during a load and a save of references leaves (a blob stored
// but never recorded, an extracted archive, the temporary file of an
// atomic write), loosens its modes, and reopens it.
func TestOpenSweepsWhatAKilledProcessLeft(t *testing.T) {
	ctx := context.Background()
	img, data := dockerSaveTar(t, "example.com/app:1")
	dir := filepath.Join(t.TempDir(), "images")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	blobs, _ := os.ReadDir(filepath.Join(dir, blobsDir))
	for _, e := range blobs {
		if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("blob %s: %v, %v; want mode 0600", e.Name(), fi, err)
		}
	}
	s.Close()

	orphan := []byte("a layer whose load was killed before its image was recorded")
	h, _, _ := v1.SHA256(bytes.NewReader(orphan))
	leftovers := []string{
		filepath.Join(dir, blobsDir, h.Hex),
		filepath.Join(dir, ingestDir, ".import-1234", "blobs", "sha256", "x"),
		filepath.Join(dir, ".repositories.json.tmp-99"),
		filepath.Join(dir, blobsDir, ".x.tmp-7"),
	}
	for _, p := range leftovers {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, orphan, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, blobsDir), filepath.Join(dir, ingestDir)} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range leftovers {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived Open: %v", strings.TrimPrefix(p, dir), err)
		}
	}
	id, _ := img.ConfigName()
	if _, err := s.Get(ctx, id.String()); err != nil {
		t.Errorf("the recorded image is gone after Open: %v", err)
	}
	verifyStore(t, s)
	for _, d := range []string{dir, filepath.Join(dir, "blobs"), filepath.Join(dir, blobsDir), filepath.Join(dir, ingestDir)} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want mode 0700", d, fi, err)
		}
	}
}
