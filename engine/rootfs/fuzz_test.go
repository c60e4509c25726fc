package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/testenv"

	"github.com/berthvm/berth/engine/ext4"
)

// FuzzApply feeds arbitrary bytes as a layer on top of a small base
// layer. Applying must never panic, and when it succeeds the image must
// pass e2fsck. The seeds (below and in testdata/fuzz/FuzzApply) run in
// every ordinary test run.
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
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, layer []byte) {
		img := filepath.Join(dir, "fuzz.ext4")
		defer os.Remove(img)
		// Sparse tar entries may declare terabytes that archive/tar expands
		// to zeros: time, not space, is what bounds them.
		ctx, cancel := context.WithTimeout(bg, 5*time.Second)
		defer cancel()
		err := UnpackLayers(ctx, img, []io.Reader{bytes.NewReader(base), bytes.NewReader(layer)},
			ext4.WithMinFree(1<<20), ext4.WithMinFreeInodes(64))
		if err != nil {
			if _, serr := os.Stat(img); serr == nil {
				t.Fatalf("failed unpack (%v) left an image", err)
			}
			return
		}
		testenv.Fsck(t, img)
	})
}
