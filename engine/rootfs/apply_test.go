package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/berthvm/berth/internal/testenv"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/ext4"
)

// exp is what an entry of the final image must be. Zero fields are not
// compared, except typ.
type exp struct {
	typ    uint32 // S_IFREG, S_IFDIR, ...
	body   *string
	target string
	mode   uint32 // permission bits; 0: not compared
	uid    uint32
	links  int
	major  uint32
	minor  uint32
	mtime  time.Time
	xattrs map[string]string
}

const (
	sIFREG = 0o100000
	sIFDIR = 0o040000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
	sIFBLK = 0o060000
	sIFIFO = 0o010000
)

func str(s string) *string { return &s }

func isFile(body string) exp { return exp{typ: sIFREG, body: str(body)} }
func isDir() exp             { return exp{typ: sIFDIR} }
func isLink(target string) exp {
	return exp{typ: sIFLNK, target: target}
}

// unpackTars writes an image of the layers and checks it with e2fsck.
func unpackTars(t *testing.T, layers ...[]byte) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "rootfs.ext4")
	rs := make([]io.Reader, len(layers))
	for i, l := range layers {
		rs[i] = bytes.NewReader(l)
	}
	mustDo(t, UnpackLayers(bg, img, rs, ext4.WithMinFree(4<<20), ext4.WithMinFreeInodes(256)))
	testenv.Fsck(t, img)
	return img
}

// checkImage reads every expected entry back with go-ext4 (through Reader)
// and debugfs (xattrs) and checks the absent ones are absent.
func checkImage(t *testing.T, img string, want map[string]exp, absent []string) {
	t.Helper()
	im, err := OpenReader(img)
	mustDo(t, err)
	defer im.Close()
	for p, e := range want {
		fi, err := im.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode&0o170000 != e.typ {
			t.Errorf("%s: type %o, want %o", p, fi.Mode&0o170000, e.typ)
		}
		if e.mode != 0 && fi.Mode&0o7777 != e.mode {
			t.Errorf("%s: mode %o, want %o", p, fi.Mode&0o7777, e.mode)
		}
		if fi.UID != e.uid {
			t.Errorf("%s: uid %d, want %d", p, fi.UID, e.uid)
		}
		if e.links != 0 && fi.Links != e.links {
			t.Errorf("%s: links %d, want %d", p, fi.Links, e.links)
		}
		if !e.mtime.IsZero() && !fi.Mtime.Equal(e.mtime) {
			t.Errorf("%s: mtime %v, want %v", p, fi.Mtime, e.mtime)
		}
		if e.body != nil {
			b, err := im.ReadFile(p, 1<<30)
			if err != nil || string(b) != *e.body {
				t.Errorf("%s: content %q (%v), want %q", p, b, err, *e.body)
			}
		}
		if e.typ == sIFLNK && fi.Target != e.target {
			t.Errorf("%s: target %q, want %q", p, fi.Target, e.target)
		}
		if (e.typ == sIFCHR || e.typ == sIFBLK) && (fi.Major != e.major || fi.Minor != e.minor) {
			t.Errorf("%s: device %d:%d, want %d:%d", p, fi.Major, fi.Minor, e.major, e.minor)
		}
		for name, v := range e.xattrs {
			f := filepath.Join(t.TempDir(), "x")
			testenv.Debugfs(t, img, "ea_get -f "+f+" "+p+" "+name)
			if b, err := os.ReadFile(f); err != nil || string(b) != v {
				t.Errorf("%s: xattr %s = %q (%v), want %q", p, name, b, err, v)
			}
		}
	}
	for _, p := range absent {
		if _, err := im.Lstat(p); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("%s: present (%v), want absent", p, err)
		}
	}
}

func TestLayerSemantics(t *testing.T) {
	nano := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
	cases := []struct {
		name   string
		layers [][]ent
		want   map[string]exp
		absent []string
	}{{
		name: "whiteout removes a lower file",
		layers: [][]ent{
			{dir("a"), file("a/f", "lower"), file("a/keep", "k")},
			{file("a/.wh.f", "")},
		},
		want:   map[string]exp{"/a": isDir(), "/a/keep": isFile("k")},
		absent: []string{"/a/f", "/a/.wh.f"},
	}, {
		name: "whiteout removes a lower directory tree",
		layers: [][]ent{
			{dir("d"), dir("d/sub"), file("d/sub/x", "x")},
			{file(".wh.d", "")},
		},
		absent: []string{"/d", "/d/sub/x"},
	}, {
		name: "whiteout spares what the same layer made, in either order",
		layers: [][]ent{
			{dir("a"), file("a/x", "lower"), file("a/y", "lower")},
			{file("a/x", "upper"), file("a/.wh.x", ""), file("a/.wh.y", ""), file("a/y", "upper")},
		},
		want: map[string]exp{"/a/x": isFile("upper"), "/a/y": isFile("upper")},
	}, {
		name: "whiteout of a missing entry is ignored",
		layers: [][]ent{
			{file("f", "x"), dir("d")},
			{file(".wh.nothing", ""), file("nodir/.wh.x", ""), file(".wh..wh.plnk", ""), file(".wh.", ""), file("d/.wh.", ""), file("d/.wh..", "")},
		},
		want:   map[string]exp{"/f": isFile("x"), "/d": isDir()},
		absent: []string{"/nothing", "/.wh..wh.plnk", "/.wh.nothing"},
	}, {
		name: "opaque directory hides lower entries only",
		layers: [][]ent{
			{dir("o"), file("o/old", "old"), dir("o/sub"), file("o/sub/deep", "deep")},
			{dir("o"), file("o/.wh..wh..opq", ""), file("o/new", "new")},
		},
		want:   map[string]exp{"/o": isDir(), "/o/new": isFile("new")},
		absent: []string{"/o/old", "/o/sub", "/o/.wh..wh..opq"},
	}, {
		name: "opaque marker after the layer's own entries",
		layers: [][]ent{
			{dir("o"), file("o/old", "old"), dir("o/sub"), file("o/sub/deep", "deep")},
			{dir("o"), dir("o/sub"), file("o/sub/new", "new"), file("o/.wh..wh..opq", "")},
		},
		want:   map[string]exp{"/o/sub": isDir(), "/o/sub/new": isFile("new")},
		absent: []string{"/o/old", "/o/sub/deep"},
	}, {
		name: "directory replaced by a file",
		layers: [][]ent{
			{dir("x"), file("x/y", "y")},
			{file("x", "now a file")},
		},
		want:   map[string]exp{"/x": isFile("now a file")},
		absent: []string{"/x/y"},
	}, {
		name: "file replaced by a directory",
		layers: [][]ent{
			{file("f", "file")},
			{dir("f"), file("f/z", "z")},
		},
		want: map[string]exp{"/f": isDir(), "/f/z": isFile("z")},
	}, {
		name: "directory entry of a later layer keeps the contents",
		layers: [][]ent{
			{dir("d"), file("d/a", "a")},
			{{name: "d", typ: tar.TypeDir, mode: 0o700, uid: 5}},
		},
		want: map[string]exp{"/d": {typ: sIFDIR, mode: 0o700, uid: 5}, "/d/a": isFile("a")},
	}, {
		name: "hard link to a file of a lower layer",
		layers: [][]ent{
			{dir("bin"), file("bin/busybox", "bb")},
			{hardlink("bin/sh", "bin/busybox"), hardlink("ls", "/bin/busybox")},
		},
		want: map[string]exp{
			"/bin/sh":      {typ: sIFREG, body: str("bb"), links: 3},
			"/bin/busybox": {typ: sIFREG, body: str("bb"), links: 3},
			"/ls":          {typ: sIFREG, body: str("bb"), links: 3},
		},
	}, {
		name: "removing one name of a hard link keeps the other",
		layers: [][]ent{
			{file("a", "shared"), hardlink("b", "a")},
			{file(".wh.a", "")},
		},
		want:   map[string]exp{"/b": {typ: sIFREG, body: str("shared"), links: 1}},
		absent: []string{"/a"},
	}, {
		name: "paths through a symlinked parent resolve inside the root",
		layers: [][]ent{
			{dir("usr"), dir("usr/lib"), symlink("lib", "usr/lib"), symlink("abs", "/usr")},
			{file("lib/libc.so", "libc"), file("abs/lib/x", "x"), dir("lib/sub"), file("lib/sub/y", "y")},
		},
		want: map[string]exp{
			"/lib":             isLink("usr/lib"),
			"/usr/lib/libc.so": isFile("libc"),
			"/usr/lib/x":       isFile("x"),
			"/usr/lib/sub/y":   isFile("y"),
			"/lib/libc.so":     isFile("libc"), // read through the symlink
		},
	}, {
		name: "whiteout through a symlinked parent",
		layers: [][]ent{
			{dir("usr"), dir("usr/lib"), file("usr/lib/old", "o"), symlink("lib", "usr/lib")},
			{file("lib/.wh.old", "")},
		},
		want:   map[string]exp{"/lib": isLink("usr/lib")},
		absent: []string{"/usr/lib/old"},
	}, {
		name: "missing parents are created",
		layers: [][]ent{
			{file("a/b/c/file", "deep")},
		},
		want: map[string]exp{"/a/b/c": {typ: sIFDIR, mode: 0o755}, "/a/b/c/file": isFile("deep")},
	}, {
		name: "special files, modes, owners, times, xattrs",
		layers: [][]ent{{
			dir("dev"),
			{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
			{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, major: 8, minor: 1},
			{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
			{name: "suid", typ: tar.TypeReg, mode: 0o4755, body: "s"},
			{name: "sgid", typ: tar.TypeReg, mode: 0o2755, body: "g"},
			{name: "tmp", typ: tar.TypeDir, mode: 0o1777},
			{name: "owned", typ: tar.TypeReg, mode: 0o600, uid: 3000000000, gid: 7, body: "o"},
			{name: "nano", typ: tar.TypeReg, mode: 0o644, mtime: nano, body: "n"},
			{name: "ping", typ: tar.TypeReg, mode: 0o755, body: "p", xattrs: map[string]string{
				"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
				"user.note":           "hello",
				"unsupported.ns":      "dropped",
			}},
		}},
		want: map[string]exp{
			"/dev/null": {typ: sIFCHR, mode: 0o666, major: 1, minor: 3},
			"/dev/sda":  {typ: sIFBLK, mode: 0o660, major: 8, minor: 1},
			"/fifo":     {typ: sIFIFO, mode: 0o600},
			"/suid":     {typ: sIFREG, mode: 0o4755, body: str("s")},
			"/sgid":     {typ: sIFREG, mode: 0o2755, body: str("g")},
			"/tmp":      {typ: sIFDIR, mode: 0o1777},
			"/owned":    {typ: sIFREG, uid: 3000000000, body: str("o")},
			"/nano":     {typ: sIFREG, mtime: nano, body: str("n")},
			"/ping": {typ: sIFREG, body: str("p"), xattrs: map[string]string{
				"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
				"user.note":           "hello",
			}},
		},
	}, {
		name: "root directory entry sets the root's metadata",
		layers: [][]ent{
			{{name: "./", typ: tar.TypeDir, mode: 0o700}, file("./x", "x")},
		},
		want: map[string]exp{"/": {typ: sIFDIR, mode: 0o700}, "/x": isFile("x")},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var layers [][]byte
			for _, l := range c.layers {
				layers = append(layers, mkTar(t, l...))
			}
			img := unpackTars(t, layers...)
			checkImage(t, img, c.want, c.absent)
		})
	}
}

// TestHostileLayers feeds layers that try to reach the host and checks
// that the host is untouched and the image holds the entries inside it.
func TestHostileLayers(t *testing.T) {
	host := t.TempDir() // a host directory a hostile layer aims at
	sentinel := filepath.Join(host, "sentinel")
	mustDo(t, os.WriteFile(sentinel, []byte("host"), 0o644))
	hostRel := strings.Repeat("../", 20) + strings.TrimPrefix(host, "/")
	cases := []struct {
		name   string
		layers [][]ent
		want   map[string]exp
		absent []string
	}{{
		name:   "absolute and dot-dot paths stay in the root",
		layers: [][]ent{{file("/abs", "a"), file("../../../../dotdot", "d"), file("x/../../y", "y"), file(host+"/sentinel", "image")}},
		want: map[string]exp{
			"/abs": isFile("a"), "/dotdot": isFile("d"), "/y": isFile("y"),
			host + "/sentinel": isFile("image"),
		},
	}, {
		name: "relative symlink out of the root",
		layers: [][]ent{
			{symlink("escape", hostRel)},
			{file("escape/sentinel", "pwned"), file("escape/new", "new")},
		},
		want: map[string]exp{
			"/escape":          isLink(hostRel),
			host + "/sentinel": isFile("pwned"), host + "/new": isFile("new"),
		},
	}, {
		name: "absolute symlink to a host directory",
		layers: [][]ent{
			{symlink("abs", host)},
			{file("abs/sentinel", "pwned")},
		},
		want: map[string]exp{host + "/sentinel": isFile("pwned")},
	}, {
		name: "hard link to a host file resolves inside the image",
		layers: [][]ent{
			{dir("etc"), file("etc/passwd", "image passwd")},
			{hardlink("stolen", "../../../../../etc/passwd")},
		},
		want: map[string]exp{"/stolen": {typ: sIFREG, body: str("image passwd"), links: 2}},
	}, {
		name: "symlink loop",
		layers: [][]ent{
			{symlink("loop1", "loop2"), symlink("loop2", "loop1")},
		},
		want: map[string]exp{"/loop1": isLink("loop2")},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var layers [][]byte
			for _, l := range c.layers {
				layers = append(layers, mkTar(t, l...))
			}
			img := unpackTars(t, layers...)
			checkImage(t, img, c.want, c.absent)
		})
	}
	if b, err := os.ReadFile(sentinel); err != nil || string(b) != "host" {
		t.Fatalf("host sentinel changed: %q %v", b, err)
	}
	entries, err := os.ReadDir(host)
	mustDo(t, err)
	if len(entries) != 1 {
		t.Fatalf("host directory gained entries: %v", entries)
	}

	// Layers that cannot be applied fail cleanly, leave no image, and
	// touch nothing on the host.
	bad := []struct {
		name  string
		layer []ent
	}{
		{"hard link to a missing file", []ent{hardlink("x", host+"/sentinel")}},
		{"hard link to a directory", []ent{dir("d"), hardlink("x", "d")}},
		{"path through a symlink loop", []ent{symlink("l1", "l2"), symlink("l2", "l1"), file("l1/x", "x")}},
		{"path through a file", []ent{file("f", "f"), file("f/x", "x")}},
		{"file at lost+found", []ent{file("lost+found", "x")}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "bad.ext4")
			err := UnpackLayers(bg, img, []io.Reader{bytes.NewReader(mkTar(t, c.layer...))}, ext4.WithMinFree(1<<20))
			if err == nil {
				t.Fatal("no error")
			}
			if _, serr := os.Stat(img); !os.IsNotExist(serr) {
				t.Errorf("image left behind after %v", err)
			}
			matches, _ := filepath.Glob(filepath.Join(filepath.Dir(img), "*"))
			if len(matches) != 0 {
				t.Errorf("temporary files left: %v", matches)
			}
		})
	}
	if b, err := os.ReadFile(sentinel); err != nil || string(b) != "host" {
		t.Fatalf("host sentinel changed: %q %v", b, err)
	}
}

func TestCompressedLayers(t *testing.T) {
	l1 := gzipped(t, mkTar(t, dir("etc"), file("etc/os-release", "gzip layer")))
	l2 := zstded(t, mkTar(t, file("etc/hostname", "zstd layer")))
	l3 := mkTar(t, file("etc/plain", "plain layer"))
	img := unpackTars(t, l1, l2, l3)
	checkImage(t, img, map[string]exp{
		"/etc/os-release": isFile("gzip layer"),
		"/etc/hostname":   isFile("zstd layer"),
		"/etc/plain":      isFile("plain layer"),
	}, nil)

	err := UnpackLayers(bg, filepath.Join(t.TempDir(), "x.ext4"), []io.Reader{strings.NewReader("\x1f\x8bnot gzip at all")})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("corrupt gzip: %v, want invalid argument", err)
	}
	err = UnpackLayers(bg, filepath.Join(t.TempDir(), "x.ext4"), []io.Reader{strings.NewReader(strings.Repeat("garbage!", 200))})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("garbage tar: %v, want invalid argument", err)
	}
}

func TestSourceErrorIsNotInvalidArgument(t *testing.T) {
	netErr := errors.New("connection reset")
	layer := gzipped(t, mkTar(t, file("a", strings.Repeat("a", 100000)), file("b", "b")))
	for _, l := range [][]byte{layer, mkTar(t, file("a", strings.Repeat("a", 100000)))} {
		r := io.MultiReader(bytes.NewReader(l[:len(l)/2]), iotest.ErrReader(netErr))
		err := UnpackLayers(bg, filepath.Join(t.TempDir(), "x.ext4"), []io.Reader{r})
		if !errors.Is(err, netErr) || errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("source failing mid-layer: %v; want the source's error, not invalid argument", err)
		}
	}
	// A truncated (not failing) stream and corrupt gzip are bad content.
	err := UnpackLayers(bg, filepath.Join(t.TempDir(), "x.ext4"), []io.Reader{bytes.NewReader(layer[:len(layer)/2])})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("truncated layer: %v, want invalid argument", err)
	}
	corrupt := bytes.Clone(layer)
	for i := 40; i < len(corrupt)-20; i += 7 {
		corrupt[i] ^= 0x5a
	}
	err = UnpackLayers(bg, filepath.Join(t.TempDir(), "x.ext4"), []io.Reader{bytes.NewReader(corrupt)})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("corrupt gzip: %v, want invalid argument", err)
	}
}

func TestUnpackCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(bg)
	cancel()
	img := filepath.Join(t.TempDir(), "c.ext4")
	err := UnpackLayers(ctx, img, []io.Reader{bytes.NewReader(mkTar(t, file("a", "a")))})
	if err == nil {
		t.Fatal("no error from a cancelled context")
	}
	if _, serr := os.Stat(img); !os.IsNotExist(serr) {
		t.Errorf("image left behind")
	}
}
