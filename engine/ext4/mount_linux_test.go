package ext4

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"

	"golang.org/x/sys/unix"
)

// mount loop-mounts img read-write at a new directory and returns it;
// the image is unmounted when the test ends (or earlier by umount).
func mount(t *testing.T, img string) (dir string, umount func()) {
	t.Helper()
	testenv.RequireRoot(t, "loop-mounting an image")
	dir = t.TempDir()
	if err := mountLoop(img, dir, "loop"); err != nil {
		t.Fatal(err)
	}
	done := false
	umount = func() {
		if done {
			return
		}
		done = true
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	}
	t.Cleanup(umount)
	return dir, umount
}

// checkMounted compares the wanted entries with what the kernel shows.
func checkMounted(t *testing.T, root string, wants map[string]want) {
	t.Helper()
	for p, w := range wants {
		full := filepath.Join(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(full, &st); err != nil {
			t.Errorf("%s: lstat: %v", p, err)
			continue
		}
		if got := st.Mode &^ unix.S_IFMT; got != w.mode {
			t.Errorf("%s: mode %o, want %o", p, got, w.mode)
		}
		if st.Mode&unix.S_IFMT != uint32(w.typ.ifmt()) {
			t.Errorf("%s: type %o, want %s", p, st.Mode&unix.S_IFMT, w.typ)
		}
		if st.Uid != w.uid || st.Gid != w.gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, w.uid, w.gid)
		}
		if w.typ != TypeDir && st.Size != w.size {
			t.Errorf("%s: size %d, want %d", p, st.Size, w.size)
		}
		if w.links != 0 && int(st.Nlink) != w.links {
			t.Errorf("%s: links %d, want %d", p, st.Nlink, w.links)
		}
		if !w.mtime.IsZero() {
			if got := time.Unix(st.Mtim.Unix()); !got.Equal(w.mtime) {
				t.Errorf("%s: mtime %v, want %v", p, got, w.mtime)
			}
		}
		switch w.typ {
		case TypeCharDevice, TypeBlockDevice:
			if unix.Major(st.Rdev) != w.major || unix.Minor(st.Rdev) != w.minor {
				t.Errorf("%s: device %d:%d, want %d:%d", p, unix.Major(st.Rdev), unix.Minor(st.Rdev), w.major, w.minor)
			}
		case TypeSymlink:
			if got, err := os.Readlink(full); err != nil || got != w.target {
				t.Errorf("%s: target %q (%v), want %q", p, got, err, w.target)
			}
		case TypeRegular:
			if w.content != nil {
				if b, err := os.ReadFile(full); err != nil || !bytes.Equal(b, w.content) {
					t.Errorf("%s: content differs (%v)", p, err)
				}
			}
		}
		for name, v := range w.xattrs {
			buf := make([]byte, 64<<10)
			n, err := unix.Lgetxattr(full, name, buf)
			if err != nil || !bytes.Equal(buf[:n], v) {
				t.Errorf("%s: xattr %s = %q (%v), want %q", p, name, buf[:max(n, 0)], err, v)
			}
		}
	}
}

func TestWriterMountedReadWrite(t *testing.T) {
	testenv.RequireRoot(t, "loop-mounting an image")
	img, wants := buildAll(t, 128<<20)
	root, umount := mount(t, img)
	checkMounted(t, root, wants)
	// The ACL reads back in the VFS format.
	buf := make([]byte, 256)
	if n, err := unixGetxattr(filepath.Join(root, "acl"), "system.posix_acl_access", buf); err != nil || n != 44 {
		t.Errorf("acl: %d bytes, %v", n, err)
	}
	// The kernel writes and deletes thousands of files.
	for d := range 20 {
		dir := filepath.Join(root, fmt.Sprintf("new%02d", d))
		mustDo(t, os.Mkdir(dir, 0o755))
		for i := range 200 {
			mustDo(t, os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), randBytes(uint64(i), 100+i*37), 0o644))
		}
	}
	for d := 0; d < 20; d += 2 {
		mustDo(t, os.RemoveAll(filepath.Join(root, fmt.Sprintf("new%02d", d))))
	}
	mustDo(t, os.RemoveAll(filepath.Join(root, "many")))
	mustDo(t, os.Remove(filepath.Join(root, "extents2000")))
	mustDo(t, os.WriteFile(filepath.Join(root, "multi"), randBytes(9, 3<<20), 0o644))
	mustDo(t, os.Symlink("x", filepath.Join(root, "newlink")))
	// The kernel rewrites our in-inode and block xattrs.
	for _, f := range []string{"xboth", "xsmall", "xdir"} {
		full := filepath.Join(root, f)
		mustDo(t, unix.Lsetxattr(full, "user.added", bytes.Repeat([]byte("k"), 300), 0))
		mustDo(t, unix.Lsetxattr(full, "user.a", []byte("changed"), 0))
	}
	mustDo(t, unix.Lremovexattr(filepath.Join(root, "xboth"), "user.long"))
	umount()
	testenv.Fsck(t, img)
	root, umount = mount(t, img)
	buf = make([]byte, 1024)
	if n, err := unix.Lgetxattr(filepath.Join(root, "xboth"), "security.capability", buf); err != nil || n != 20 {
		t.Errorf("xboth security.capability after rewrite: %d %v", n, err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(root, "xboth"), "user.long", buf); err == nil {
		t.Error("xboth user.long still there after removal")
	}
	if n, err := unix.Lgetxattr(filepath.Join(root, "xsmall"), "user.added", buf); err != nil || n != 300 {
		t.Errorf("xsmall user.added: %d %v", n, err)
	}
	for d := 1; d < 20; d += 2 {
		b, err := os.ReadFile(filepath.Join(root, fmt.Sprintf("new%02d", d), "199"))
		if err != nil || !bytes.Equal(b, randBytes(199, 100+199*37)) {
			t.Errorf("new%02d/199 after remount: %v", d, err)
		}
	}
	umount()
	testenv.Fsck(t, img)
}

// TestLargeSparseFileMounted reads a file larger than 4 GiB through the
// kernel.
func TestLargeSparseFileMounted(t *testing.T) {
	testenv.RequireRoot(t, "loop-mounting an image")
	img := filepath.Join(t.TempDir(), "large.ext4")
	w, err := Create(img, WithMinFree(16<<20))
	mustDo(t, err)
	const size = 5<<30 + 1
	tail := []byte("past four gigabytes")
	r := ioMulti(&zeroReader{n: 4<<30 + 512<<20}, bytes.NewReader(tail), &zeroReader{n: size - (4<<30 + 512<<20) - int64(len(tail)) - 1}, bytes.NewReader([]byte{'!'}))
	mustDo(t, w.WriteFile(bg, "/large", Metadata{Mode: 0o644}, r, size))
	mustDo(t, w.Close(bg))
	testenv.Fsck(t, img)
	root, _ := mount(t, img)
	f, err := os.Open(filepath.Join(root, "large"))
	mustDo(t, err)
	defer f.Close()
	got := make([]byte, len(tail))
	_, err = f.ReadAt(got, 4<<30+512<<20)
	mustDo(t, err)
	if !bytes.Equal(got, tail) {
		t.Errorf("read %q at 4.5 GiB, want %q", got, tail)
	}
	last := make([]byte, 1)
	_, err = f.ReadAt(last, size-1)
	mustDo(t, err)
	if last[0] != '!' {
		t.Errorf("last byte %q", last)
	}
}

// TestJournalRecovery copies an image while the kernel has it mounted
// and dirty (as an unclean VM stop leaves it): the copy needs recovery,
// and the kernel replays the journal when it mounts it; e2fsck is clean
// afterwards and the files written before the "crash" are there.
func TestJournalRecovery(t *testing.T) {
	testenv.RequireRoot(t, "loop-mounting an image")
	img := filepath.Join(t.TempDir(), "j.ext4")
	w, err := Create(img, WithMinFree(32<<20))
	mustDo(t, err)
	mustDo(t, w.Close(bg))
	root, umount := mount(t, img)
	for i := range 300 {
		mustDo(t, os.WriteFile(filepath.Join(root, fmt.Sprint(i)), []byte(fmt.Sprint(i)), 0o644))
	}
	mustDo(t, os.Mkdir(filepath.Join(root, "dir"), 0o755))
	unix.Sync()
	crash := filepath.Join(t.TempDir(), "crash.ext4")
	if out, err := exec.Command("cp", "--sparse=always", img, crash).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	umount()
	testenv.Fsck(t, img)

	const incompatRecover = 0x4
	incompat := func() uint32 {
		b := make([]byte, 4)
		f, err := os.Open(crash)
		mustDo(t, err)
		defer f.Close()
		_, err = f.ReadAt(b, 1024+96)
		mustDo(t, err)
		return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	}
	if incompat()&incompatRecover == 0 {
		t.Fatal("the copy of a mounted image does not need recovery: nothing was journaled")
	}
	root, umount = mount(t, crash)
	b, err := os.ReadFile(filepath.Join(root, "299"))
	if err != nil || string(b) != "299" {
		t.Errorf("299 after recovery: %q %v", b, err)
	}
	umount()
	if incompat()&incompatRecover != 0 {
		t.Error("still needs recovery after the kernel mounted it")
	}
	testenv.Fsck(t, crash)
}

// TestFillToFull lets the kernel fill an image whose last block group is
// a single block until ENOSPC, which exercises every free block and
// count the writer computed; e2fsck must stay clean.
func TestFillToFull(t *testing.T) {
	testenv.RequireRoot(t, "loop-mounting an image")
	img := filepath.Join(t.TempDir(), "full.ext4")
	w, err := Create(img, WithSize(128<<20+4096))
	mustDo(t, err)
	mustDo(t, w.Close(bg))
	root, umount := mount(t, img)
	f, err := os.Create(filepath.Join(root, "fill"))
	mustDo(t, err)
	chunk := bytes.Repeat([]byte{0xAB}, 1<<20)
	var written int64
	for {
		n, err := f.Write(chunk)
		written += int64(n)
		if err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("write: %v", err)
			}
			break
		}
	}
	f.Close()
	if written < 100<<20 {
		t.Errorf("only %d bytes fit in a 128 MiB image", written)
	}
	umount()
	testenv.Fsck(t, img)
	root, umount = mount(t, img)
	mustDo(t, os.Remove(filepath.Join(root, "fill")))
	umount()
	testenv.Fsck(t, img)
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
		if !bytes.Contains(out, []byte("loop")) {
			break
		}
		time.Sleep(time.Duration(200*(attempt+1)) * time.Millisecond)
	}
	return fmt.Errorf("mount -o %s %s %s: %v\n%s", opts, img, dir, err, out)
}
