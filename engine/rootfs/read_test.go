package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/testenv"

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

func TestLookupUser(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1001::/home/app:/bin/sh\nnobody:x:65534:65534::/:/sbin/nologin\n"
	group := "root:x:0:\nwheel:x:10:app,other\napp:x:1001:\nusers:x:100:other,app\nstaff:x:50:root\n"
	img := unpackTars(t, mkTar(t,
		dir("etc"), file("etc/passwd.real", passwd), symlink("etc/passwd", "passwd.real"), file("etc/group", group),
	))
	cases := []struct {
		user   string
		uid    uint32
		gid    uint32
		groups []uint32
		err    error
	}{
		{user: "root", uid: 0, gid: 0, groups: []uint32{50}},
		{user: "app", uid: 1000, gid: 1001, groups: []uint32{10, 100}},
		{user: "1000", uid: 1000, gid: 1001, groups: []uint32{10, 100}},
		{user: "4242", uid: 4242, gid: 0},
		{user: "app:wheel", uid: 1000, gid: 10, groups: []uint32{100}},
		{user: "app:77", uid: 1000, gid: 77, groups: []uint32{10, 100}},
		{user: "ghost", err: errdefs.ErrNotFound},
		{user: "app:ghosts", err: errdefs.ErrNotFound},
	}
	for _, c := range cases {
		uid, gid, groups, err := LookupUser(bg, img, c.user)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s: error %v, want %v", c.user, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.user, err)
			continue
		}
		slices.Sort(groups)
		slices.Sort(c.groups)
		if uid != c.uid || gid != c.gid || !slices.Equal(groups, c.groups) {
			t.Errorf("%s: %d:%d %v, want %d:%d %v", c.user, uid, gid, groups, c.uid, c.gid, c.groups)
		}
	}

	// No /etc/passwd at all: numeric users still work.
	bare := unpackTars(t, mkTar(t, file("x", "x")))
	if uid, gid, _, err := LookupUser(bg, bare, "123:456"); err != nil || uid != 123 || gid != 456 {
		t.Errorf("123:456 without /etc/passwd: %d:%d %v", uid, gid, err)
	}
	if _, _, _, err := LookupUser(bg, bare, "app"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("app without /etc/passwd: %v", err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "none.ext4"), "/etc/passwd"); err == nil {
		t.Error("ReadFile of a missing image succeeded")
	}
	var _ io.Reader
}
