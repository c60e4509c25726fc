package tarcopy

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	name, link, body string
	typ              byte
}

func tarOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a target directory beside an "outside" one with a file a
// hostile archive might try to reach.
func sandbox(t *testing.T) (target, outside string, root *os.Root) {
	t.Helper()
	dir := t.TempDir()
	target, outside = filepath.Join(dir, "target"), filepath.Join(dir, "outside")
	for _, d := range []string{target, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return target, outside, root
}

func TestExtractRefusesHostileArchives(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
	}{
		{"absolute", []entry{{name: "/abs", body: "x", typ: tar.TypeReg}}},
		{"dotdot", []entry{{name: "../outside/secret", body: "x", typ: tar.TypeReg}}},
		{"dotdot inside", []entry{{name: "a/../../outside/new", body: "x", typ: tar.TypeReg}}},
		{"symlink dir escape", []entry{
			{name: "esc", link: "../outside", typ: tar.TypeSymlink},
			{name: "esc/secret", body: "x", typ: tar.TypeReg},
		}},
		{"absolute symlink escape", []entry{
			{name: "esc", link: filepath.Join(os.TempDir()), typ: tar.TypeSymlink},
			{name: "esc/new", body: "x", typ: tar.TypeReg},
		}},
		{"hard link out", []entry{{name: "h", link: "../outside/secret", typ: tar.TypeLink}}},
		{"hard link absolute", []entry{{name: "h", link: "/etc/passwd", typ: tar.TypeLink}}},
		{"hard link through symlink", []entry{
			{name: "esc", link: "../outside", typ: tar.TypeSymlink},
			{name: "h", link: "esc/secret", typ: tar.TypeLink},
		}},
		{"device", []entry{{name: "null", typ: tar.TypeChar}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, outside, root := sandbox(t)
			err := Extract(context.Background(), root, bytes.NewReader(tarOf(t, tc.entries...)), ExtractOptions{UID: -1, GID: -1})
			var he *HostileError
			if !errors.As(err, &he) {
				t.Fatalf("Extract = %v, want a HostileError", err)
			}
			got, err := os.ReadFile(filepath.Join(outside, "secret"))
			if err != nil || string(got) != "keep" {
				t.Fatalf("outside/secret = %q, %v: changed", got, err)
			}
			if des, _ := os.ReadDir(outside); len(des) != 1 {
				t.Fatalf("outside has %d entries, want only secret", len(des))
			}
		})
	}
}

func TestExtractRoundTrip(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "d", "sub"), 0o750)
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("hello"), 0o640)
	os.WriteFile(filepath.Join(src, "d", "sub", "g"), []byte("deep"), 0o600)
	os.Symlink("f", filepath.Join(src, "d", "link"))
	sroot, err := os.OpenRoot(src)
	if err != nil {
		t.Fatal(err)
	}
	defer sroot.Close()
	var buf bytes.Buffer
	if err := Archive(context.Background(), sroot, "d", "copy", &buf); err != nil {
		t.Fatal(err)
	}
	target, _, root := sandbox(t)
	if err := Extract(context.Background(), root, &buf, ExtractOptions{UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "copy", "sub", "g")); err != nil || string(b) != "deep" {
		t.Fatalf("copy/sub/g = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(target, "copy", "f")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("copy/f: %v, %v; want mode 0640", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(target, "copy", "link")); err != nil || l != "f" {
		t.Fatalf("copy/link -> %q, %v", l, err)
	}
	// Renamed on the way in, and a file replaced by a new one.
	buf.Reset()
	Archive(context.Background(), sroot, "d/f", "f", &buf)
	opts := ExtractOptions{UID: -1, GID: -1}
	opts.Rename.From, opts.Rename.To = "f", "renamed"
	if err := Extract(context.Background(), root, &buf, opts); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "renamed")); string(b) != "hello" {
		t.Fatalf("renamed = %q", b)
	}
	// A symlink out, then replaced by a directory and written through:
	// the writes land in the new directory, inside.
	if err := Extract(context.Background(), root, bytes.NewReader(tarOf(t,
		entry{name: "s", link: "../outside", typ: tar.TypeSymlink},
		entry{name: "s/", typ: tar.TypeDir},
		entry{name: "s/secret", body: "x", typ: tar.TypeReg},
	)), ExtractOptions{UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(target, "s")); err != nil || !fi.IsDir() {
		t.Fatalf("s: %v, %v; want the directory that replaced the symlink", fi, err)
	}
	// noOverwriteDirNonDir: a file over the directory copy/ is refused.
	opts.Rename.To = "copy"
	buf.Reset()
	Archive(context.Background(), sroot, "d/f", "f", &buf)
	opts.NoOverwriteDirNonDir = true
	if err := Extract(context.Background(), root, &buf, opts); err == nil {
		t.Fatal("a file replaced a directory despite NoOverwriteDirNonDir")
	}
}

func TestResolveInRoot(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "run", "x"), 0o755)
	os.MkdirAll(filepath.Join(dir, "var"), 0o755)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.Symlink("/run", filepath.Join(dir, "var", "run"))
	os.Symlink("../../../../..", filepath.Join(dir, "up"))
	os.Symlink("loop", filepath.Join(dir, "loop"))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, tc := range []struct {
		in         string
		followLast bool
		want       string
		err        bool
	}{
		{"/", false, ".", false},
		{"/var/run/x", false, "run/x", false},
		{"/var/run", false, "var/run", false},
		{"/var/run", true, "run", false},
		{"/up/etc/passwd", false, "etc/passwd", false},
		{"/../../run", false, "run", false},
		{"/run/missing", false, "run/missing", false},
		{"/loop", true, "", true},
		{"relative", false, "", true},
	} {
		got, err := ResolveInRoot(root, tc.in, tc.followLast)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ResolveInRoot(%q, %v) = %q, %v; want %q (error %v)", tc.in, tc.followLast, got, err, tc.want, tc.err)
		}
	}
}

// "dir/." is archived as "./" and "./x", as Docker names it.
func TestArchiveDotNames(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "d", "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "sub", "f"), nil, 0o644)
	root, err := os.OpenRoot(src)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var buf bytes.Buffer
	if err := Archive(context.Background(), root, "d", ".", &buf); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, " "); got != "./ ./sub/ ./sub/f" {
		t.Fatalf("entries %q", got)
	}
}
