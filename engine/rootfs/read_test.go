package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/user"
	"github.com/berthvm/berth/internal/testenv"
	"github.com/berthvm/berth/internal/usertest"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/ext4"
)

// TestReadAcrossBlockGroups reads back, through go-ext4, a directory
// whose entries' inodes lie in several block groups (where go-ext4's own
// DirectoryWalk goes wrong), files with holes, and files whose extent
// trees have index levels.
func TestReadAcrossBlockGroups(t *testing.T) {
	img := filepath.Join(t.TempDir(), "span.ext4")
	w, err := ext4.Create(img, ext4.WithSize(512<<20)) // 4 groups of 8192 inodes
	mustDo(t, err)
	mustDo(t, w.Mkdir(bg, "/d", ext4.Metadata{Mode: 0o755}))
	const n = 20000
	for i := range n {
		p := fmt.Sprintf("/d/f%05d", i)
		mustDo(t, w.WriteFile(bg, p, ext4.Metadata{Mode: 0o644, UID: uint32(i)}, strings.NewReader(p), int64(len(p))))
	}
	holes := make([]byte, 3000*4096)
	for i := 0; i < 3000; i += 2 {
		copy(holes[i*4096:], fmt.Sprintf("block %d", i))
	}
	mustDo(t, w.WriteFile(bg, "/d/holes", ext4.Metadata{Mode: 0o644}, bytes.NewReader(holes), int64(len(holes))))
	// A directory whose own inode lies in group 2: go-ext4's DirectoryWalk
	// reads it through group 0's descriptor and stops there with EOF.
	mustDo(t, w.Mkdir(bg, "/z", ext4.Metadata{Mode: 0o755}))
	mustDo(t, w.Mkdir(bg, "/z/sub", ext4.Metadata{Mode: 0o755}))
	mustDo(t, w.WriteFile(bg, "/z/sub/x", ext4.Metadata{Mode: 0o600}, strings.NewReader("deep"), 4))
	mustDo(t, w.Mkdir(bg, "/etc", ext4.Metadata{Mode: 0o755}))
	mustDo(t, w.Symlink(bg, "/etc/link", "../d/f19999", ext4.Metadata{}))
	mustDo(t, w.Close(bg))
	testenv.Fsck(t, img)

	im, err := OpenReader(img)
	mustDo(t, err)
	defer im.Close()
	names, err := im.ReadDir("/d")
	mustDo(t, err)
	if len(names) != n+1 {
		t.Fatalf("ReadDir /d: %d names, want %d", len(names), n+1)
	}
	groups := map[uint32]bool{}
	for i := 0; i < n; i += 997 {
		p := fmt.Sprintf("/d/f%05d", i)
		b, err := im.ReadFile(p, 1<<20)
		if err != nil || string(b) != p {
			t.Errorf("%s: %q %v", p, b, err)
		}
		fi, err := im.Lstat(p)
		mustDo(t, err)
		if fi.UID != uint32(i) {
			t.Errorf("%s: uid %d", p, fi.UID)
		}
		groups[(fi.Ino-1)/8192] = true
	}
	if len(groups) < 3 {
		t.Errorf("inodes read from groups %v, want at least 3", groups)
	}
	sub, err := im.Lstat("/z/sub")
	mustDo(t, err)
	if sub.Ino <= 2*8192 {
		t.Errorf("/z/sub is inode %d, want one in group 2", sub.Ino)
	}
	if b, err := im.ReadFile("/z/sub/x", 100); err != nil || string(b) != "deep" {
		t.Errorf("/z/sub/x: %q %v", b, err)
	}
	b, err := im.ReadFile("/d/holes", 1<<30)
	mustDo(t, err)
	if !bytes.Equal(b, holes) {
		t.Error("/d/holes read back differently")
	}
	b, err = im.ReadFile("/etc/link", 1<<20)
	if err != nil || string(b) != "/d/f19999" {
		t.Errorf("/etc/link: %q %v", b, err)
	}
	if _, err := im.ReadFile("/d/missing", 1<<20); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := im.ReadFile("/d/holes", 100); err == nil {
		t.Error("limit not enforced")
	}
}

// TestLookupUser: the host, reading the files out of an ext4 image (here
// /etc/passwd is a symlink inside it), answers the shared table as the
// guest does (internal/guest runs the same table).
func TestLookupUser(t *testing.T) {
	fixtures, cases := usertest.Table(t)
	images := map[string]string{}
	for name, f := range fixtures {
		ents := []ent{dir("etc")}
		if f.Passwd != nil {
			ents = append(ents, file("etc/passwd.real", *f.Passwd), symlink("etc/passwd", "passwd.real"))
		}
		if f.Group != nil {
			ents = append(ents, file("etc/group", *f.Group))
		}
		images[name] = unpackTars(t, mkTar(t, ents...))
	}
	for _, c := range cases {
		if len(c.Extra) > 0 {
			continue // extra gids (--group-add) are the guest's alone
		}
		uid, gid, groups, err := LookupUser(bg, images[c.Fixture], c.Spec)
		if c.Want.Error != "" && err != nil && strings.Contains(err.Error(), images[c.Fixture]) {
			t.Errorf("%s: %q names the image path", c.Spec, err)
		}
		// The host has no use for home: take the table's.
		usertest.Check(t, c, user.Exec{UID: uid, GID: gid, Groups: groups, Home: c.Want.Home}, err)
	}
	if _, _, _, err := LookupUser(bg, filepath.Join(t.TempDir(), "none.ext4"), "app"); err == nil || errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("LookupUser in a missing image: %v, want an unclassified open error", err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "none.ext4"), "/etc/passwd"); err == nil {
		t.Error("ReadFile of a missing image succeeded")
	}
}
