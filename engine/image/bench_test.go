package image

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var (
	benchOnce sync.Once
	benchImg  v1.Image
)

// benchImage pushes (once) an image with one 64 MiB incompressible layer
// to the shared registry and returns its reference.
func benchImage(b *testing.B) (string, v1.Image) {
	f := sharedFixture(b)
	benchOnce.Do(func() {
		benchImg = testImage(b, hostPlatform, 7, 64<<20, false)
		push(b, f.ref("bench/big:1"), benchImg, nil)
	})
	return f.ref("bench/big:1"), benchImg
}

func benchStore(b *testing.B) *Store {
	s, err := Open(filepath.Join(b.TempDir(), "images"), WithKeychain(authn.NewMultiKeychain()), WithRetry(2, 10*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func layerBytes(b *testing.B, img v1.Image) int64 {
	ls, _ := img.Layers()
	var n int64
	for _, l := range ls {
		sz, _ := l.Size()
		n += sz
	}
	return n
}

// BenchmarkPull64MiB pulls a 64 MiB layer from the loopback registry into
// an empty store: download, hash, fsync, rename.
func BenchmarkPull64MiB(b *testing.B) {
	ref, img := benchImage(b)
	b.SetBytes(layerBytes(b, img))
	for b.Loop() {
		b.StopTimer()
		s := benchStore(b)
		b.StartTimer()
		if _, err := s.Pull(context.Background(), ref); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPullUpToDate pulls an image the store already has: one
// manifest round trip, no blob.
func BenchmarkPullUpToDate(b *testing.B) {
	ref, _ := benchImage(b)
	s := benchStore(b)
	if _, err := s.Pull(context.Background(), ref); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Pull(context.Background(), ref); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExportImport64MiB saves the image to a tarball in memory and
// loads it into an empty store.
func BenchmarkExportImport64MiB(b *testing.B) {
	ref, img := benchImage(b)
	src := benchStore(b)
	if _, err := src.Pull(context.Background(), ref); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(layerBytes(b, img))
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := src.Export(context.Background(), &buf, ref); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		dst := benchStore(b)
		b.StartTimer()
		if _, err := dst.Import(context.Background(), &buf); err != nil {
			b.Fatal(err)
		}
	}
}
