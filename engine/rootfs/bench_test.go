package rootfs

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// benchTar is a real root filesystem as one uncompressed layer: by default
// the tar of `debootstrap --variant=minbase bookworm` that docs/BENCHMARKS.md
// says how to make; BERTH_BENCH_ROOTFS_TAR names another.
func benchTar(b *testing.B) string {
	p := os.Getenv("BERTH_BENCH_ROOTFS_TAR")
	if p == "" {
		home, _ := os.UserHomeDir()
		p = filepath.Join(home, ".cache", "berth", "bench", "debian-bookworm-minbase.tar")
	}
	if _, err := os.Stat(p); err != nil {
		b.Skipf("skipping: no rootfs tar at %s (see docs/BENCHMARKS.md to make one): %v", p, err)
	}
	return p
}

// benchTarGz is benchTar compressed with `gzip -6` (file name + ".gz").
func benchTarGz(b *testing.B) string {
	p := benchTar(b) + ".gz"
	if _, err := os.Stat(p); err != nil {
		b.Skipf("skipping: no gzipped rootfs tar at %s (gzip -k -6 the tar): %v", p, err)
	}
	return p
}

// BenchmarkRootfsBerth writes the real rootfs layer into an ext4 image
// (including the final fsync).
func BenchmarkRootfsBerth(b *testing.B) { benchBerth(b, benchTar(b)) }

// BenchmarkRootfsBerthGzip is BenchmarkRootfsBerth from the gzipped layer.
func BenchmarkRootfsBerthGzip(b *testing.B) { benchBerth(b, benchTarGz(b)) }

func benchBerth(b *testing.B, src string) {
	fi, _ := os.Stat(src)
	b.SetBytes(fi.Size())
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		f, err := os.Open(src)
		mustDo(b, err)
		img := filepath.Join(dir, fmt.Sprintf("%d.ext4", i))
		mustDo(b, UnpackLayers(bg, img, []io.Reader{f}))
		f.Close()
		b.StopTimer()
		os.Remove(img)
		b.StartTimer()
	}
}

// BenchmarkRootfsBaseline is what Berth replaces: `tar -x` of the same
// layer into a directory, then `mkfs.ext4 -d` of that directory.
func BenchmarkRootfsBaseline(b *testing.B) { benchBaseline(b, benchTar(b), "-xf") }

// BenchmarkRootfsBaselineGzip is BenchmarkRootfsBaseline with `tar -xzf`
// of the gzipped layer.
func BenchmarkRootfsBaselineGzip(b *testing.B) { benchBaseline(b, benchTarGz(b), "-xzf") }

func benchBaseline(b *testing.B, src, tarFlags string) {
	testenv.RequireCommand(b, "mkfs.ext4", "e2fsprogs")
	fi, _ := os.Stat(src)
	b.SetBytes(fi.Size())
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		tree := filepath.Join(dir, fmt.Sprintf("tree%d", i))
		img := filepath.Join(dir, fmt.Sprintf("%d.ext4", i))
		mustDo(b, os.Mkdir(tree, 0o755))
		run(b, "tar", tarFlags, src, "-C", tree, "--numeric-owner")
		run(b, "mkfs.ext4", "-F", "-q", "-d", tree, img, "1500M")
		b.StopTimer()
		os.RemoveAll(tree)
		os.Remove(img)
		b.StartTimer()
	}
}

func run(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// flatTar is a layer with n 512-byte files in one directory.
func flatTar(b *testing.B, n int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 0)
	mustDo(b, tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}))
	body := bytes.Repeat([]byte("x"), 512)
	for i := range n {
		mustDo(b, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d/file-%07d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 512, ModTime: mt}))
		_, err := tw.Write(body)
		mustDo(b, err)
	}
	mustDo(b, tw.Close())
	return buf.Bytes()
}

func benchFlat(b *testing.B, n int) {
	layer := flatTar(b, n)
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		img := filepath.Join(dir, fmt.Sprintf("%d.ext4", i))
		mustDo(b, UnpackLayers(bg, img, []io.Reader{bytes.NewReader(layer)}))
		b.StopTimer()
		os.Remove(img)
		b.StartTimer()
	}
}

// BenchmarkFlat10k and BenchmarkFlat100k put 10,000 and 100,000 files in
// one directory: their times should differ by about 10x (linear).
func BenchmarkFlat10k(b *testing.B)  { benchFlat(b, 10_000) }
func BenchmarkFlat100k(b *testing.B) { benchFlat(b, 100_000) }

// BenchmarkRootfsSideBySide alternates Berth and the tar + mkfs.ext4
// baseline on the uncompressed layer in every iteration, so both see the
// same machine load, and reports each one's seconds and their ratio.
func BenchmarkRootfsSideBySide(b *testing.B) {
	src := benchTar(b)
	testenv.RequireCommand(b, "mkfs.ext4", "e2fsprogs")
	dir := b.TempDir()
	var berth, base time.Duration
	for i := 0; b.Loop(); i++ {
		img := filepath.Join(dir, fmt.Sprintf("berth%d.ext4", i))
		start := time.Now()
		f, err := os.Open(src)
		mustDo(b, err)
		mustDo(b, UnpackLayers(bg, img, []io.Reader{f}))
		f.Close()
		berth += time.Since(start)
		os.Remove(img)

		tree := filepath.Join(dir, fmt.Sprintf("tree%d", i))
		img = filepath.Join(dir, fmt.Sprintf("mkfs%d.ext4", i))
		start = time.Now()
		mustDo(b, os.Mkdir(tree, 0o755))
		run(b, "tar", "-xf", src, "-C", tree, "--numeric-owner")
		run(b, "mkfs.ext4", "-F", "-q", "-d", tree, img, "1500M")
		base += time.Since(start)
		os.RemoveAll(tree)
		os.Remove(img)
	}
	b.ReportMetric(berth.Seconds()/float64(b.N), "berth-s/op")
	b.ReportMetric(base.Seconds()/float64(b.N), "baseline-s/op")
	b.ReportMetric(berth.Seconds()/base.Seconds(), "ratio")
}

// BenchmarkRootfsBerthImage is the path the cache takes: a go-
// containerregistry v1.Image whose one layer is the gzipped rootfs, which
// ggcr decompresses (compress/gzip) while ApplyImage writes the image.
func BenchmarkRootfsBerthImage(b *testing.B) {
	src := benchTarGz(b)
	layer, err := tarball.LayerFromFile(src)
	mustDo(b, err)
	img, err := mutate.AppendLayers(empty.Image, layer)
	mustDo(b, err)
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		out := filepath.Join(dir, fmt.Sprintf("%d.ext4", i))
		mustDo(b, Unpack(bg, img, out, 0))
		b.StopTimer()
		os.Remove(out)
		b.StartTimer()
	}
}
