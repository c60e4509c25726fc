package rootfs

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/testenv"

	"golang.org/x/sys/unix"
)

// TestRealRootfsMounted unpacks a real root filesystem layer (the
// benchmark's debootstrap tar, when it has been made) and compares every
// entry of the tar with what the kernel shows of the loop-mounted image:
// type, mode, owner, size, mtime, link target, device numbers, content.
func TestRealRootfsMounted(t *testing.T) {
	p := os.Getenv("BERTH_BENCH_ROOTFS_TAR")
	if p == "" {
		home, _ := os.UserHomeDir()
		p = filepath.Join(home, ".cache", "berth", "bench", "debian-bookworm-minbase.tar")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("skipping: no real rootfs tar at %s (make it with testdata/make-bench-rootfs.sh)", p)
	}
	if os.Geteuid() != 0 {
		if inCI() {
			t.Fatal("this test loop-mounts an image and must run as root in CI")
		}
		t.Skip("skipping: loop-mounting an image needs root")
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
