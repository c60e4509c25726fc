package rootfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthvm/berth/internal/testenv"
)

// TestCloneReflink clones a base image on btrfs, where FICLONE works:
// the clone must share the base's extents (filefrag reports them
// "shared") and still be an independent, valid image.
func TestCloneReflink(t *testing.T) {
	mkfs := testenv.RequireCommand(t, "mkfs.btrfs", "btrfs-progs")
	filefrag := testenv.RequireCommand(t, "filefrag", "e2fsprogs")
	testenv.RequireRoot(t, "loop-mounting a btrfs volume")
	vol := filepath.Join(t.TempDir(), "btrfs.img")
	f, err := os.Create(vol)
	mustDo(t, err)
	mustDo(t, f.Truncate(512<<20))
	f.Close()
	if out, err := exec.Command(mkfs, "-q", vol).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v\n%s", err, out)
	}
	mnt := t.TempDir()
	if err := mountLoop(vol, mnt, "loop"); err != nil {
		testenv.Unavailable(t, "cannot mount a btrfs volume (btrfs module?): %v", err)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })

	c, err := NewCache(filepath.Join(mnt, "cache"))
	mustDo(t, err)
	img := testImage(t, mkTar(t, dir_("etc"), file("etc/hostname", "reflink\n"), file("data", strings.Repeat("d", 3<<20))))
	base, err := c.Ensure(bg, img)
	mustDo(t, err)
	d, _ := img.Digest()
	clone := filepath.Join(mnt, "clone.ext4")
	mustDo(t, c.Clone(bg, d, clone))
	mustDo(t, exec.Command("sync").Run())
	out, err := exec.Command(filefrag, "-v", clone).CombinedOutput()
	mustDo(t, err)
	if !bytes.Contains(out, []byte("shared")) {
		t.Errorf("clone shares no extents with its base (FICLONE not used?):\n%s", out)
	}
	testenv.Fsck(t, clone)
	if b, err := ReadFile(clone, "/etc/hostname"); err != nil || string(b) != "reflink\n" {
		t.Errorf("clone /etc/hostname: %q %v", b, err)
	}
	// Writing to the clone leaves the base as it was.
	cf, err := os.OpenFile(clone, os.O_WRONLY, 0)
	mustDo(t, err)
	_, err = cf.WriteAt(make([]byte, 4096), 1024) // wipe the clone's superblock
	mustDo(t, err)
	cf.Close()
	testenv.Fsck(t, base)
}
