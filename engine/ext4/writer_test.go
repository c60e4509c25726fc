package ext4

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"

	"github.com/berthvm/berth/engine/errdefs"
)

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// posixACL builds a POSIX ACL xattr value in the VFS (tar) format.
func posixACL(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

// buildAll writes an image holding every kind of entry and returns the
// image path and what each entry must be.
func buildAll(t *testing.T, free int64) (string, map[string]want) {
	img := filepath.Join(t.TempDir(), "all.ext4")
	w, err := Create(img, WithMinFree(free), WithMinFreeInodes(8192))
	mustDo(t, err)
	wants := map[string]want{}
	mt := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	md := func(mode, uid, gid uint32) Metadata { return Metadata{Mode: mode, UID: uid, GID: gid, Mtime: mt} }
	file := func(p string, m Metadata, content []byte) {
		t.Helper()
		mustDo(t, w.WriteFile(bg, p, m, bytes.NewReader(content), int64(len(content))))
		wants[p] = want{typ: TypeRegular, mode: m.Mode, uid: m.UID, gid: m.GID, size: int64(len(content)), content: content, links: 1, mtime: m.Mtime, xattrs: m.Xattrs}
	}
	dir := func(p string, m Metadata) {
		t.Helper()
		mustDo(t, w.Mkdir(bg, p, m))
		wants[p] = want{typ: TypeDir, mode: m.Mode, uid: m.UID, gid: m.GID, mtime: m.Mtime, xattrs: m.Xattrs}
	}

	dir("/dir", md(0o755, 1000, 1000))
	file("/dir/file", md(0o644, 0, 0), []byte("hello\n"))
	file("/dir/setuid", md(0o4755, 0, 0), []byte("#!/bin/sh\n"))
	file("/dir/setgid", md(0o2711, 0, 0), []byte("x"))
	dir("/sticky", md(0o1777, 0, 0))
	file("/empty", md(0o600, 0, 0), nil)
	file("/multi", md(0o644, 0, 0), randBytes(1, 1<<20+123))
	file("/uid32", md(0o640, 100000, 4000000000), []byte("big ids"))
	file("/old", Metadata{Mode: 0o644, Mtime: time.Date(1960, 1, 1, 0, 0, 0, 5, time.UTC)}, []byte("old"))
	file("/future", Metadata{Mode: 0o644, Mtime: time.Date(2300, 1, 1, 0, 0, 0, 999999999, time.UTC)}, []byte("future"))

	// Sparse: data, a hole, data, a hole, a last byte.
	sparse := make([]byte, 10<<20)
	copy(sparse, "start")
	copy(sparse[5<<20:], "middle")
	sparse[len(sparse)-1] = 'e'
	file("/sparse", md(0o644, 0, 0), sparse)
	// Many extents: every other block holds data (depth-2 extent tree).
	many := make([]byte, 2*2000*blockSize)
	for i := 0; i < 2000; i++ {
		copy(many[2*i*blockSize:], fmt.Sprintf("block %d", i))
	}
	file("/extents2000", md(0o644, 0, 0), many)
	few := make([]byte, 2*10*blockSize)
	for i := 0; i < 10; i++ {
		few[2*i*blockSize] = 1
	}
	file("/extents10", md(0o644, 0, 0), few)

	mustDo(t, w.Symlink(bg, "/fastlink", "dir/file", md(0o777, 5, 6)))
	wants["/fastlink"] = want{typ: TypeSymlink, mode: 0o777, uid: 5, gid: 6, size: 8, target: "dir/file"}
	slow := "/" + strings.Repeat("s", 59) + "/" + strings.Repeat("t", 40)
	mustDo(t, w.Symlink(bg, "/slowlink", slow, md(0o777, 0, 0)))
	wants["/slowlink"] = want{typ: TypeSymlink, mode: 0o777, size: int64(len(slow)), target: slow}
	edge := strings.Repeat("e", 59)
	mustDo(t, w.Symlink(bg, "/edgelink", edge, md(0o777, 0, 0)))
	wants["/edgelink"] = want{typ: TypeSymlink, mode: 0o777, size: 59, target: edge}
	edge60 := strings.Repeat("f", 60)
	mustDo(t, w.Symlink(bg, "/edgelink60", edge60, md(0o777, 0, 0)))
	wants["/edgelink60"] = want{typ: TypeSymlink, mode: 0o777, size: 60, target: edge60}

	mustDo(t, w.Link(bg, "/hard1", "/dir/file"))
	mustDo(t, w.Link(bg, "/dir/hard2", "/dir/file"))
	for _, p := range []string{"/dir/file", "/hard1", "/dir/hard2"} {
		x := wants["/dir/file"]
		x.links = 3
		wants[p] = x
	}

	dir("/dev", md(0o755, 0, 0))
	mustDo(t, w.Mknod(bg, "/dev/null", TypeCharDevice, 1, 3, md(0o666, 0, 0)))
	wants["/dev/null"] = want{typ: TypeCharDevice, mode: 0o666, major: 1, minor: 3}
	mustDo(t, w.Mknod(bg, "/dev/wide", TypeCharDevice, 300, 70000, md(0o600, 0, 0)))
	wants["/dev/wide"] = want{typ: TypeCharDevice, mode: 0o600, major: 300, minor: 70000}
	mustDo(t, w.Mknod(bg, "/dev/sda", TypeBlockDevice, 8, 0, md(0o660, 0, 6)))
	wants["/dev/sda"] = want{typ: TypeBlockDevice, mode: 0o660, gid: 6, major: 8, minor: 0}
	mustDo(t, w.Mknod(bg, "/fifo", TypeFIFO, 0, 0, md(0o644, 0, 0)))
	wants["/fifo"] = want{typ: TypeFIFO, mode: 0o644}

	// xattrs: in the inode, in a block, and both; a POSIX ACL.
	small := Metadata{Mode: 0o644, Xattrs: map[string][]byte{"user.a": []byte("b")}}
	file("/xsmall", small, []byte("x"))
	cap := []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	both := Metadata{Mode: 0o755, Xattrs: map[string][]byte{
		"security.capability": cap,
		"user.long":           bytes.Repeat([]byte("v"), 1000),
		"trusted.t":           []byte("trusted value"),
		"user.empty":          {},
	}}
	file("/xboth", both, []byte("x"))
	dir("/xdir", Metadata{Mode: 0o755, Xattrs: map[string][]byte{"user.dir": []byte("on a dir")}})
	acl := posixACL([3]uint32{1, 6, 0xFFFFFFFF}, [3]uint32{2, 4, 1000}, [3]uint32{4, 4, 0xFFFFFFFF}, [3]uint32{0x10, 4, 0xFFFFFFFF}, [3]uint32{0x20, 0, 0xFFFFFFFF})
	aclMD := Metadata{Mode: 0o640, Xattrs: map[string][]byte{"system.posix_acl_access": acl}}
	mustDo(t, w.WriteFile(bg, "/acl", aclMD, bytes.NewReader([]byte("acl")), 3))
	wants["/acl"] = want{typ: TypeRegular, mode: 0o640, size: 3, content: []byte("acl")}

	// Replacements and removals.
	file("/replaced", md(0o644, 0, 0), []byte("was a file"))
	dir("/replaced", md(0o700, 0, 0))
	dir("/wasdir", md(0o755, 0, 0))
	file("/wasdir/child", md(0o644, 0, 0), randBytes(2, 50000))
	file("/wasdir", md(0o644, 0, 0), []byte("now a file"))
	file("/gone", md(0o644, 0, 0), randBytes(3, 100000))
	mustDo(t, w.Remove(bg, "/gone"))
	delete(wants, "/gone")
	delete(wants, "/wasdir/child")
	file("/rewritten", md(0o644, 0, 0), randBytes(4, 30000))
	file("/rewritten", md(0o600, 0, 0), []byte("second"))

	// A directory of many entries (several directory blocks).
	dir("/many", md(0o755, 0, 0))
	for i := range 3000 {
		p := fmt.Sprintf("/many/entry-with-a-longish-name-%05d", i)
		c := []byte(p)
		mustDo(t, w.WriteFile(bg, p, md(0o644, 0, 0), bytes.NewReader(c), int64(len(c))))
		if i%500 == 0 {
			wants[p] = want{typ: TypeRegular, mode: 0o644, size: int64(len(c)), content: c, links: 1}
		}
	}
	mustDo(t, w.Close(bg))
	return img, wants
}

func TestWriterEntriesE2fsckAndDebugfs(t *testing.T) {
	img, wants := buildAll(t, 32<<20)
	testenv.Fsck(t, img)
	checkDebugfs(t, img, wants)

	// Things debugfs must not find.
	for _, p := range []string{"/gone", "/wasdir/child", "/replaced/x"} {
		if out := testenv.Debugfs(t, img, "stat "+p); !strings.Contains(out, "File not found") && !strings.Contains(out, "not a directory") {
			t.Errorf("%s: still there:\n%s", p, out)
		}
	}
	// Holes stay holes: the sparse file has 3 data blocks.
	st := testenv.Debugfs(t, img, "stat /sparse")
	if !strings.Contains(st, "Blockcount: 24\n") {
		t.Errorf("/sparse is not sparse:\n%s", st)
	}
	// The 2000-extent file needs a tree of depth 2.
	if st := testenv.Debugfs(t, img, "stat /extents2000"); !strings.Contains(st, "Level Entries") && !strings.Contains(st, "(ETB1)") {
		t.Errorf("/extents2000: expected a deep extent tree:\n%.2000s", st)
	}
	// The ACL is stored in ext4's own format.
	if out := testenv.Debugfs(t, img, "ea_list /acl"); !strings.Contains(out, "system.posix_acl_access") {
		t.Errorf("/acl: no ACL:\n%s", out)
	}
	// lost+found is inode 11, the root inode 2.
	if out := testenv.Debugfs(t, img, "stat /lost+found"); !strings.Contains(out, "Inode: 11 ") {
		t.Errorf("lost+found is not inode 11:\n%s", out)
	}
	// The image is sparse.
	var fi os.FileInfo
	fi, err := os.Stat(img)
	mustDo(t, err)
	if blocks := diskBlocks(fi); blocks*512 > fi.Size()/2 {
		t.Errorf("image of %d bytes uses %d bytes on disk", fi.Size(), blocks*512)
	}
}

func TestLargeSparseFile(t *testing.T) {
	img := filepath.Join(t.TempDir(), "large.ext4")
	w, err := Create(img, WithMinFree(16<<20))
	mustDo(t, err)
	const size = 5<<30 + 1
	tail := []byte("past four gigabytes")
	r := ioMulti(&zeroReader{n: 4<<30 + 512<<20}, bytes.NewReader(tail), &zeroReader{n: size - (4<<30 + 512<<20) - int64(len(tail)) - 1}, bytes.NewReader([]byte{'!'}))
	mustDo(t, w.WriteFile(bg, "/large", Metadata{Mode: 0o644}, r, size))
	mustDo(t, w.Close(bg))
	testenv.Fsck(t, img)
	st := testenv.Debugfs(t, img, "stat /large")
	if !strings.Contains(st, fmt.Sprintf("Size: %d", int64(size))) || !strings.Contains(st, "Blockcount: 16\n") {
		t.Fatalf("/large:\n%s", st)
	}
	fi, err := os.Stat(img)
	mustDo(t, err)
	if fi.Size() > 1<<30 {
		t.Errorf("image is %d bytes: the file's holes took space in the filesystem", fi.Size())
	}
}

// TestInodesSpanGroups makes a directory whose inodes fill several block
// groups.
func TestInodesSpanGroups(t *testing.T) {
	img := filepath.Join(t.TempDir(), "span.ext4")
	w, err := Create(img, WithSize(512<<20))
	mustDo(t, err)
	mustDo(t, w.Mkdir(bg, "/d", Metadata{Mode: 0o755}))
	wants := map[string]want{}
	const n = 12000 // 512 MiB: 4 groups of 8192 inodes
	for i := range n {
		p := fmt.Sprintf("/d/f%d", i)
		mustDo(t, w.WriteFile(bg, p, Metadata{Mode: 0o644}, strings.NewReader(p), int64(len(p))))
		if i%1000 == 999 {
			wants[p] = want{typ: TypeRegular, mode: 0o644, size: int64(len(p)), content: []byte(p), links: 1}
		}
	}
	mustDo(t, w.Close(bg))
	testenv.Fsck(t, img)
	// Inodes of the directory's entries lie in every group.
	out := testenv.Debugfs(t, img, "ls -l /d")
	groups := map[int]bool{}
	for _, line := range strings.Split(out, "\n") {
		var ino int
		if _, err := fmt.Sscan(line, &ino); err == nil && ino > 11 {
			groups[(ino-1)/8192] = true
		}
	}
	if len(groups) < 2 {
		t.Errorf("inodes in groups %v, want several", groups)
	}
	checkDebugfs(t, img, wants)
}

func TestWriterErrors(t *testing.T) {
	img := filepath.Join(t.TempDir(), "e.ext4")
	w, err := Create(img, WithMinFree(8<<20))
	mustDo(t, err)
	cases := []struct {
		name  string
		err   error
		class error
	}{
		{"missing parent", w.WriteFile(bg, "/no/such", Metadata{}, strings.NewReader(""), 0), errdefs.ErrNotFound},
		{"long name", w.Mkdir(bg, "/"+strings.Repeat("n", 256), Metadata{}), errdefs.ErrInvalidArgument},
		{"short content", w.WriteFile(bg, "/short", Metadata{}, strings.NewReader("abc"), 10), nil},
		{"bad xattr", w.WriteFile(bg, "/x", Metadata{Xattrs: map[string][]byte{"foo.bar": nil}}, strings.NewReader(""), 0), errdefs.ErrInvalidArgument},
		{"xattrs too big", w.Mkdir(bg, "/big", Metadata{Xattrs: map[string][]byte{"user.a": make([]byte, 5000)}}), errdefs.ErrInvalidArgument},
		{"link to dir", w.Link(bg, "/l", "/lost+found"), errdefs.ErrInvalidArgument},
		{"link to missing", w.Link(bg, "/l", "/missing"), errdefs.ErrNotFound},
		{"file at lost+found", w.WriteFile(bg, "/lost+found", Metadata{}, strings.NewReader(""), 0), errdefs.ErrInvalidArgument},
		{"remove missing", w.Remove(bg, "/missing"), errdefs.ErrNotFound},
		{"empty symlink", w.Symlink(bg, "/s", "", Metadata{}), errdefs.ErrInvalidArgument},
		{"bad device", w.Mknod(bg, "/d", TypeCharDevice, 5000, 0, Metadata{}), errdefs.ErrInvalidArgument},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if c.class != nil && !errors.Is(c.err, c.class) {
			t.Errorf("%s: %v is not %v", c.name, c.err, c.class)
		}
		if !strings.Contains(c.err.Error(), img) {
			t.Errorf("%s: error %q does not name the image", c.name, c.err)
		}
	}
	// The failed writes left nothing behind; the image is still sound.
	mustDo(t, w.Close(bg))
	testenv.Fsck(t, img)
	if err := w.Mkdir(bg, "/after", Metadata{}); err == nil {
		t.Error("Mkdir after Close succeeded")
	}
}

func TestFixedSize(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "small.ext4"), WithSize(8<<20))
	mustDo(t, err)
	mustDo(t, w.WriteFile(bg, "/f", Metadata{Mode: 0o644}, bytes.NewReader(randBytes(1, 6<<20)), 6<<20))
	err = w.Close(bg)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "too small") {
		t.Fatalf("Close of an overfull image: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "small.ext4")); !os.IsNotExist(serr) {
		t.Errorf("failed image left behind: %v", serr)
	}
	p := filepath.Join(dir, "exact.ext4")
	w, err = Create(p, WithSize(300<<20))
	mustDo(t, err)
	mustDo(t, w.WriteFile(bg, "/f", Metadata{Mode: 0o644}, bytes.NewReader(randBytes(1, 6<<20)), 6<<20))
	mustDo(t, w.Close(bg))
	fi, err := os.Stat(p)
	mustDo(t, err)
	if fi.Size() != 300<<20 {
		t.Errorf("size %d, want %d", fi.Size(), 300<<20)
	}
	testenv.Fsck(t, p)
}

func TestRemoveAndHardlinks(t *testing.T) {
	img := filepath.Join(t.TempDir(), "rm.ext4")
	w, err := Create(img, WithMinFree(8<<20))
	mustDo(t, err)
	data := randBytes(7, 40000)
	mustDo(t, w.Mkdir(bg, "/a", Metadata{Mode: 0o755}))
	mustDo(t, w.WriteFile(bg, "/a/f", Metadata{Mode: 0o644}, bytes.NewReader(data), int64(len(data))))
	mustDo(t, w.Link(bg, "/keep", "/a/f"))
	mustDo(t, w.Remove(bg, "/a"))
	info, err := w.Lookup("/keep")
	mustDo(t, err)
	if info.Links != 1 || info.Size != int64(len(data)) {
		t.Errorf("/keep after removing /a: %+v", info)
	}
	mustDo(t, w.Remove(bg, "/"))
	names, err := w.ReadDir("/")
	mustDo(t, err)
	if len(names) != 1 || names[0] != "lost+found" {
		t.Errorf("root after Remove(/): %v", names)
	}
	mustDo(t, w.WriteFile(bg, "/again", Metadata{Mode: 0o644}, bytes.NewReader(data), int64(len(data))))
	mustDo(t, w.Close(bg))
	testenv.Fsck(t, img)
	checkDebugfs(t, img, map[string]want{"/again": {typ: TypeRegular, mode: 0o644, size: int64(len(data)), content: data, links: 1}})
}

// patternReader yields n bytes of a non-zero pattern without allocating.
type patternReader struct {
	n   int64
	pat []byte
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	k := copy(b[:min(int64(len(b)), p.n)], p.pat)
	p.n -= int64(k)
	return k, nil
}

// TestMemoryIndependentOfDataSize writes 256 MiB of file data and checks
// the writer allocated far less than that: data streams to the image.
func TestMemoryIndependentOfDataSize(t *testing.T) {
	img := filepath.Join(t.TempDir(), "mem.ext4")
	w, err := Create(img, WithMinFree(8<<20))
	mustDo(t, err)
	pat := randBytes(5, 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const size = 256 << 20
	mustDo(t, w.WriteFile(bg, "/big", Metadata{Mode: 0o644}, &patternReader{n: size, pat: pat}, size))
	mustDo(t, w.Close(bg))
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("writing %d bytes allocated %d bytes", size, alloc)
	}
	testenv.Fsck(t, img)
	if st := testenv.Debugfs(t, img, "stat /big"); !strings.Contains(st, fmt.Sprintf("Size: %d", size)) {
		t.Errorf("/big:\n%s", st)
	}
}

func TestLookupACLRoundTrip(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "acl.ext4"), WithMinFree(1<<20))
	mustDo(t, err)
	defer w.Abort()
	acl := posixACL([3]uint32{1, 7, 0xFFFFFFFF}, [3]uint32{2, 5, 1234}, [3]uint32{4, 5, 0xFFFFFFFF}, [3]uint32{0x10, 5, 0xFFFFFFFF}, [3]uint32{0x20, 0, 0xFFFFFFFF})
	mustDo(t, w.Mkdir(bg, "/d", Metadata{Mode: 0o755, Xattrs: map[string][]byte{"system.posix_acl_default": acl, "user.x": []byte("y")}}))
	info, err := w.Lookup("/d")
	mustDo(t, err)
	if !bytes.Equal(info.Xattrs["system.posix_acl_default"], acl) || string(info.Xattrs["user.x"]) != "y" {
		t.Errorf("xattrs %q", info.Xattrs)
	}
}

// TestManySubdirs crosses the 65000 link limit of a directory (dir_nlink:
// its count becomes 1) and stays just under it in another.
func TestManySubdirs(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode: writes 65,000 directories")
	}
	img := filepath.Join(t.TempDir(), "subdirs.ext4")
	w, err := Create(img, WithMinFree(8<<20))
	mustDo(t, err)
	for _, d := range []struct {
		name string
		n    int
	}{{"/over", 64999}, {"/at", 64998}} {
		mustDo(t, w.Mkdir(bg, d.name, Metadata{Mode: 0o755}))
		for i := range d.n {
			mustDo(t, w.Mkdir(bg, fmt.Sprintf("%s/%d", d.name, i), Metadata{Mode: 0o755}))
		}
	}
	mustDo(t, w.Close(bg))
	testenv.Fsck(t, img)
	out := testenv.Debugfs(t, img, "stat /over", "stat /at")
	if !strings.Contains(out, "Links: 1 ") || !strings.Contains(out, "Links: 65000 ") {
		t.Errorf("link counts:\n%s", out)
	}
}

// TestRemovedDataIsReleased checks that a removed file's blocks are free
// in the filesystem and punched out of the image file.
func TestRemovedDataIsReleased(t *testing.T) {
	img := filepath.Join(t.TempDir(), "released.ext4")
	w, err := Create(img, WithMinFree(8<<20))
	mustDo(t, err)
	big := randBytes(11, 48<<20)
	mustDo(t, w.WriteFile(bg, "/big", Metadata{Mode: 0o644}, bytes.NewReader(big), int64(len(big))))
	mustDo(t, w.WriteFile(bg, "/small", Metadata{Mode: 0o644}, strings.NewReader("small"), 5))
	mustDo(t, w.Remove(bg, "/big"))
	mustDo(t, w.Close(bg))
	testenv.Fsck(t, img)
	fi, err := os.Stat(img)
	mustDo(t, err)
	if used := diskBlocks(fi) * 512; used > 16<<20 {
		t.Errorf("image uses %d bytes on disk after its only big file was removed", used)
	}
	// The blocks are free in the filesystem too (e2fsck -fn above checked
	// the bitmaps and counts agree): /big had the first 12,288 data blocks,
	// /small the next one.
	first := w.dataStart
	out := testenv.Debugfs(t, img, fmt.Sprintf("testb %d %d", first, 12288), fmt.Sprintf("testb %d", first+12288))
	if n := strings.Count(out, "not in use"); n != 12288 || !strings.Contains(out, fmt.Sprintf("Block %d marked in use", first+12288)) {
		t.Errorf("%d of /big's blocks free, want 12288; /small's block:\n%.300s", n, out[len(out)-300:])
	}
}

func TestReproducible(t *testing.T) {
	build := func() [32]byte {
		img := filepath.Join(t.TempDir(), "r.ext4")
		w, err := Create(img, WithMinFree(4<<20), WithUUID([16]byte{1, 2, 3}), WithTimestamp(time.Unix(1700000000, 0)))
		mustDo(t, err)
		mustDo(t, w.Mkdir(bg, "/d", Metadata{Mode: 0o755}))
		for i := range 100 {
			p := fmt.Sprintf("/d/%d", i)
			mustDo(t, w.WriteFile(bg, p, Metadata{Mode: 0o644}, strings.NewReader(p), int64(len(p))))
		}
		mustDo(t, w.Symlink(bg, "/l", "d/1", Metadata{}))
		mustDo(t, w.Close(bg))
		testenv.Fsck(t, img)
		b, err := os.ReadFile(img)
		mustDo(t, err)
		return sha256.Sum256(b)
	}
	if a, b := build(), build(); a != b {
		t.Errorf("two builds differ: %x %x", a, b)
	}
}

// TestOddSizes covers a last block group of one block, of a few blocks
// and one block short of full, and group counts around a GDT block.
func TestOddSizes(t *testing.T) {
	for _, size := range []int64{
		8 << 20,
		128<<20 + 4096,
		128<<20 + 64<<10,
		256<<20 - 4096,
		64*128<<20 + 4096, // 65 groups: descriptors spill into a second block
	} {
		img := filepath.Join(t.TempDir(), fmt.Sprintf("%d.ext4", size))
		w, err := Create(img, WithSize(size))
		mustDo(t, err)
		mustDo(t, w.WriteFile(bg, "/f", Metadata{Mode: 0o644}, strings.NewReader("odd"), 3))
		mustDo(t, w.Close(bg))
		testenv.Fsck(t, img)
		fi, err := os.Stat(img)
		mustDo(t, err)
		if fi.Size() != size {
			t.Errorf("size %d, want %d", fi.Size(), size)
		}
	}
}
