package rootfs

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"

	"golang.org/x/sys/unix"
)

// TestRealRootfsMounted unpacks a root filesystem layer and compares
// every entry of the tar with what the kernel shows of the loop-mounted
// image: type, mode, owner, size, mtime, link target, device numbers,
// content. The layer is one the test makes (see makeRootfsTar), or the
// tar $BERTH_BENCH_ROOTFS_TAR names (testdata/make-bench-rootfs.sh makes a
// debootstrap one).
func TestRealRootfsMounted(t *testing.T) {
	testenv.RequireRoot(t, "loop-mounting an image")
	p := os.Getenv("BERTH_BENCH_ROOTFS_TAR")
	if p == "" {
		p = makeRootfsTar(t)
	}
	img := filepath.Join(t.TempDir(), "real.ext4")
	f, err := os.Open(p)
	mustDo(t, err)
	mustDo(t, UnpackLayers(bg, img, []io.Reader{f}))
	f.Close()
	testenv.Fsck(t, img)

	type entry struct {
		hdr *tar.Header
		sum [32]byte
	}
	want := map[string]*entry{}
	f, err = os.Open(p)
	mustDo(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		mustDo(t, err)
		name := path.Clean("/" + h.Name)
		e := &entry{hdr: h}
		if h.Typeflag == tar.TypeReg {
			hs := sha256.New()
			_, err := io.Copy(hs, tr)
			mustDo(t, err)
			copy(e.sum[:], hs.Sum(nil))
		}
		if h.Typeflag == tar.TypeLink {
			target := want[path.Clean("/"+h.Linkname)]
			e = &entry{hdr: target.hdr, sum: target.sum}
		}
		want[name] = e
	}

	root := t.TempDir()
	if err := mountLoop(img, root, "loop,ro"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if out, err := exec.Command("umount", root).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
		}
	}()
	checked := 0
	for name, e := range want {
		full := filepath.Join(root, name)
		var st unix.Stat_t
		if err := unix.Lstat(full, &st); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		h := e.hdr
		if st.Mode&0o7777 != uint32(h.Mode)&0o7777 && h.Typeflag != tar.TypeSymlink {
			t.Errorf("%s: mode %o, want %o", name, st.Mode&0o7777, h.Mode&0o7777)
		}
		if st.Uid != uint32(h.Uid) || st.Gid != uint32(h.Gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", name, st.Uid, st.Gid, h.Uid, h.Gid)
		}
		if name != "/" && st.Mtim.Sec != h.ModTime.Unix() {
			t.Errorf("%s: mtime %d, want %d", name, st.Mtim.Sec, h.ModTime.Unix())
		}
		switch h.Typeflag {
		case tar.TypeReg:
			b, err := os.ReadFile(full)
			if err != nil || sha256.Sum256(b) != e.sum || st.Mode&unix.S_IFMT != unix.S_IFREG {
				t.Errorf("%s: content differs (%v)", name, err)
			}
		case tar.TypeDir:
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				t.Errorf("%s: not a directory", name)
			}
		case tar.TypeSymlink:
			if l, err := os.Readlink(full); err != nil || l != h.Linkname {
				t.Errorf("%s: target %q, want %q", name, l, h.Linkname)
			}
		case tar.TypeChar, tar.TypeBlock:
			if unix.Major(st.Rdev) != uint32(h.Devmajor) || unix.Minor(st.Rdev) != uint32(h.Devminor) {
				t.Errorf("%s: device %d:%d", name, unix.Major(st.Rdev), unix.Minor(st.Rdev))
			}
		}
		checked++
	}
	entries := 0
	filepath.Walk(root, func(string, os.FileInfo, error) error { entries++; return nil })
	// The image holds the tar's entries plus lost+found.
	if entries != len(want)+1 {
		t.Errorf("image has %d entries, the tar %d (+ lost+found)", entries, len(want))
	}
	t.Logf("compared %d entries", checked)
}

// mountLoop runs mount -o opts img dir, retrying a few times when setting
// up the loop device fails: util-linux races when several processes (test
// binaries of other packages) attach loop devices at once.
func mountLoop(img, dir, opts string) error {
	var out []byte
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if out, err = exec.Command("mount", "-o", opts, img, dir).CombinedOutput(); err == nil {
			return nil
		}
		if !strings.Contains(string(out), "loop") {
			break
		}
		time.Sleep(time.Duration(200*(attempt+1)) * time.Millisecond)
	}
	return fmt.Errorf("mount -o %s %s %s: %v\n%s", opts, img, dir, err, out)
}

// makeRootfsTar writes a root filesystem layer the way image builders do
// and returns its path: Debian's static busybox with a symlink per applet
// and a hard link, Go's own net package sources as a real tree of files
// (always there where go test runs), device nodes, a FIFO, set-uid and
// sticky modes, files of other owners, names and symlink targets longer
// than the old tar limits (PAX), empty and sparse-looking files.
func makeRootfsTar(t *testing.T) string {
	t.Helper()
	bb := testenv.RequireTool(t, testenv.BusyboxBin, "busybox-static")
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	f, err := os.Create(p)
	mustDo(t, err)
	defer f.Close()
	tw := tar.NewWriter(f)
	mtime := time.Unix(1700000000, 0)
	add := func(h *tar.Header, body []byte) {
		t.Helper()
		if h.ModTime.IsZero() {
			h.ModTime = mtime
		}
		h.Size = int64(len(body))
		h.Format = tar.FormatPAX
		mustDo(t, tw.WriteHeader(h))
		_, err := tw.Write(body)
		mustDo(t, err)
	}
	dir := func(name string, mode int64) {
		add(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: mode}, nil)
	}

	dir(".", 0o755)
	for _, d := range []string{"bin", "dev", "etc", "home", "usr", "usr/src"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777)
	busybox, err := os.ReadFile(bb)
	mustDo(t, err)
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, busybox)
	add(&tar.Header{Name: "bin/busybox.hard", Typeflag: tar.TypeLink, Linkname: "bin/busybox"}, nil)
	out, err := exec.Command(bb, "--list").Output()
	mustDo(t, err)
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			add(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
		}
	}
	add(&tar.Header{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755}, []byte("#!/bin/sh\n"))
	add(&tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}, nil)
	add(&tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Mode: 0o660, Gid: 6, Devmajor: 8, Devminor: 0}, nil)
	add(&tar.Header{Name: "dev/initctl", Typeflag: tar.TypeFifo, Mode: 0o600}, nil)
	add(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"))
	add(&tar.Header{Name: "etc/shadow", Typeflag: tar.TypeReg, Mode: 0o640, Gid: 42}, []byte("root:*:19000:0:99999:7:::\n"))
	add(&tar.Header{Name: "etc/empty", Typeflag: tar.TypeReg, Mode: 0o644}, nil)
	add(&tar.Header{Name: "home/user", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 1000, Gid: 1000}, nil)
	add(&tar.Header{Name: "home/user/zeros", Typeflag: tar.TypeReg, Mode: 0o600, Uid: 1000, Gid: 1000}, make([]byte, 3<<20+123))
	long := "home/user/" + strings.Repeat("a-long-directory-name/", 6)
	for d := "home/user/"; d != long; {
		d += "a-long-directory-name/"
		dir(strings.TrimSuffix(d, "/"), 0o755)
	}
	add(&tar.Header{Name: long + "file-" + strings.Repeat("x", 150), Typeflag: tar.TypeReg, Mode: 0o644}, []byte("deep\n"))
	add(&tar.Header{Name: "home/user/far", Typeflag: tar.TypeSymlink, Linkname: "/" + long + strings.Repeat("y", 40), Mode: 0o777}, nil)

	src := filepath.Join(runtime.GOROOT(), "src", "net")
	mustDo(t, filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Dir(src), path)
		name := "usr/src/" + filepath.ToSlash(rel)
		switch {
		case fi.IsDir():
			add(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime()}, nil)
		case fi.Mode().IsRegular():
			body, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			add(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime()}, body)
		}
		return nil
	}))
	mustDo(t, tw.Close())
	return p
}
