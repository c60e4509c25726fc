package guest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/internal/testenv"
)

// imageTree writes what an image might hold at a VOLUME path: nested
// directories, a setuid file owned by someone else, symlinks that point
// out of the tree (relative and absolute) and a fifo.
func imageTree(t *testing.T, dir string) time.Time {
	t.Helper()
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "conf/deep"), 0o750))
	must(os.WriteFile(filepath.Join(dir, "conf/deep/app.ini"), []byte("key=value\n"), 0o640))
	must(os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(dir, "tool"), 0o755|os.ModeSetuid))
	must(os.Lchown(filepath.Join(dir, "conf/deep/app.ini"), 1234, 5678))
	must(os.Symlink("../../../../etc/passwd", filepath.Join(dir, "conf/up")))
	must(os.Symlink("/etc/shadow", filepath.Join(dir, "abs")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	must(os.Chtimes(filepath.Join(dir, "conf/deep/app.ini"), old, old))
	must(os.Chtimes(filepath.Join(dir, "conf/deep"), old, old))
	must(os.Chmod(dir, 0o711))
	must(os.Lchown(dir, 42, 43))
	return old
}

func TestCopyUp(t *testing.T) {
	testenv.RequireRoot(t, "copying owners")
	src, dst := t.TempDir(), t.TempDir()
	old := imageTree(t, src)
	skipped, err := copyUp(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 1 {
		t.Errorf("skipped %d special files, want 1 (the fifo)", skipped)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "conf/deep/app.ini")); err != nil || string(b) != "key=value\n" {
		t.Errorf("app.ini: %q, %v", b, err)
	}
	check := func(rel string, mode os.FileMode, uid, gid uint32) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(dst, rel))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
		}
	}
	check(".", os.ModeDir|0o711, 42, 43)
	check("conf/deep", os.ModeDir|0o750, 0, 0)
	check("conf/deep/app.ini", 0o640, 1234, 5678)
	check("tool", os.ModeSetuid|0o755, 0, 0)
	for rel, want := range map[string]string{"conf/up": "../../../../etc/passwd", "abs": "/etc/shadow"} {
		if got, err := os.Readlink(filepath.Join(dst, rel)); err != nil || got != want {
			t.Errorf("symlink %s: %q, %v; want it copied as a link to %q", rel, got, err, want)
		}
	}
	for _, rel := range []string{"conf/deep", "conf/deep/app.ini"} {
		if fi, err := os.Stat(filepath.Join(dst, rel)); err != nil || !fi.ModTime().Equal(old) {
			t.Errorf("%s: modified %v (%v), want %v", rel, fi.ModTime(), err, old)
		}
	}
	if _, err := os.Lstat(filepath.Join(dst, "fifo")); !os.IsNotExist(err) {
		t.Errorf("fifo: %v, want left out", err)
	}
}

func TestCopyUpLeavesAVolumeWithDataAlone(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "image"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "mine"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := copyUp(src, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "image")); !os.IsNotExist(err) {
		t.Errorf("the image's file was copied into a volume that had data: %v", err)
	}
}

// TestMountShareCopyUp goes through the agent: a share mounted with
// CopyUp over a rootfs path that holds files gets them; a path that
// holds nothing, or a file, makes an empty share; without CopyUp the
// share stays empty.
func TestMountShareCopyUp(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	for _, d := range []string{"var/lib/app", "var/lib/two"} {
		if err := os.MkdirAll(filepath.Join(e.rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.rootfs, d, "seed"), []byte("from the image"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An absolute symlink in the image resolves inside the rootfs.
	if err := os.Symlink("/var/lib/app", filepath.Join(e.rootfs, "data")); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		target, mounted string
		copyUp, want    bool
	}{{"/data", "var/lib/app", true, true}, {"/var/lib/two", "var/lib/two", false, false}, {"/nothing/here", "nothing/here", true, false}} {
		source := "vol" + string(rune('0'+i))
		staged := filepath.Join(e.staging, source)
		if err := e.client.Mount(ctx, &agentpb.MountRequest{Share: true, Source: source, Fstype: "tmpfs", Target: c.target, Options: []string{"size=1m"}, CopyUp: c.copyUp}); err != nil {
			t.Fatalf("mount on %s: %v", c.target, err)
		}
		t.Cleanup(func() {
			unix.Unmount(filepath.Join(e.rootfs, c.mounted), unix.MNT_DETACH)
			unix.Unmount(staged, unix.MNT_DETACH)
		})
		b, err := os.ReadFile(filepath.Join(staged, "seed"))
		if got := err == nil && string(b) == "from the image"; got != c.want {
			t.Errorf("target %s, copy up %v: the share has the image's seed: %v (%q, %v)", c.target, c.copyUp, got, b, err)
		}
	}
}
