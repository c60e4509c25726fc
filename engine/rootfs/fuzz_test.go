package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/ext4"
	"github.com/berthvm/berth/internal/testenv"
)

// FuzzApply feeds arbitrary bytes as a layer on top of a small base
// layer. Applying must never panic, and when the image is complete it
// must read back (every directory listed, every entry stat'ed, every file
// read, in process) and pass e2fsck. The seeds (below and in
// testdata/fuzz/FuzzApply) run in every ordinary test run, e2fsck
// included.
//
// Each input is written into an in-memory file (memImage: a memfd on
// Linux) through the Writer directly, not through Unpack's temporary file,
// fsync and rename, which the cache tests cover. While fuzzing, e2fsck (a
// process start per input, 20 to 100 ms, which caps the fuzzer at a few
// execs a second and makes its coverage noisy) runs only when
// BERTH_FUZZ_FSCK=1; the in-process read-back checks every input, and a
// failing input the fuzzer saves under testdata/ gets e2fsck in every
// test run after.
func FuzzApply(f *testing.F) {
	testenv.RequireCommand(f, "e2fsck", "e2fsprogs")
	base := mkTar(f,
		dir("etc"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
		dir("usr"), dir("usr/lib"), symlink("lib", "usr/lib"), file("usr/lib/libc.so", "libc"),
		dir("o"), file("o/old", "old"),
	)
	f.Add(mkTar(f, file("etc/.wh.passwd", ""), file("lib/new", "n")))
	f.Add(mkTar(f, file("o/.wh..wh..opq", ""), hardlink("o/l", "usr/lib/libc.so")))
	f.Add(mkTar(f, symlink("x", "../../.."), file("x/y", "y"), file("../../z", "z")))
	f.Add(mkTar(f, file("etc", "file over dir"), dir("usr/lib/libc.so"), file(".wh.lib", "")))
	f.Add(mkTar(f, ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		ent{name: "p", typ: tar.TypeFifo}, ent{name: "x", typ: tar.TypeReg, body: "x", xattrs: map[string]string{"user.a": "b"}}))
	f.Add(gzipped(f, mkTar(f, file("gz", "gz"))))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, layer []byte) {
		img, path := memImage(t)
		defer img.Close()
		// Sparse tar entries may declare terabytes that archive/tar expands
		// to zeros: time, not space, is what bounds them.
		ctx, cancel := context.WithTimeout(bg, 2*time.Second)
		defer cancel()
		w, err := ext4.NewWriter(img, ext4.WithMinFree(1<<20), ext4.WithMinFreeInodes(64))
		if err != nil {
			t.Fatal(err)
		}
		if err := ApplyLayers(ctx, w, bytes.NewReader(base), bytes.NewReader(layer)); err != nil {
			w.Abort()
			return
		}
		if err := w.Close(ctx); err != nil {
			return
		}
		readBack(t, path)
		if !fuzzWorker() || os.Getenv("BERTH_FUZZ_FSCK") == "1" {
			testenv.Fsck(t, path)
		}
	})
}

// fuzzWorker reports whether this process is a fuzzing worker (go test
// -fuzz runs the fuzz function in such child processes), as opposed to a
// test run of the seed corpus.
func fuzzWorker() bool {
	f := flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() == "true"
}

// readBack walks the image at path: it lists every directory, stats every
// entry and reads every regular file up to 1 MiB, failing the test on any
// error.
func readBack(t *testing.T, path string) {
	t.Helper()
	im, err := OpenReader(path)
	if err != nil {
		t.Fatalf("open the image: %v", err)
	}
	defer im.Close()
	var walk func(dir string)
	walk = func(dir string) {
		names, err := im.ReadDir(dir)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		for _, n := range names {
			p := strings.TrimSuffix(dir, "/") + "/" + n
			fi, err := im.Lstat(p)
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			switch fi.Mode & 0xF000 {
			case 0x4000:
				walk(p)
			case 0x8000:
				if fi.Size > 1<<20 {
					continue // sparse giants: reading them proves little
				}
				b, err := im.ReadFile(p, 1<<20)
				if err != nil {
					t.Fatalf("read back: %v", err)
				}
				if int64(len(b)) != fi.Size {
					t.Fatalf("read back %s: %d bytes, its inode says %d", p, len(b), fi.Size)
				}
			}
		}
	}
	walk("/")
}
