package ninep

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

const secret = "SECRET-outside-the-share"

// layout makes dir/root (the share, with a file and a subdirectory) and
// dir/outside (a secret beside it), with symlinks inside the share
// pointing out. It returns the share's path.
func layout(t testing.TB) (root, outside string) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "root")
	outside = filepath.Join(dir, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "hello.txt"), "hello")
	write(filepath.Join(root, "sub", "f"), "inside")
	write(filepath.Join(outside, "f"), secret)
	write(filepath.Join(dir, "f"), secret)
	for link, target := range map[string]string{
		"dirlink":  outside,
		"filelink": filepath.Join(outside, "f"),
		"uplink":   "../outside",
		"dotdot":   "..",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

// serve serves root over a connected pair of sockets and returns the
// guest's view: a 9P client's attached root.
func serve(t testing.TB, root string, ro bool) p9.File {
	t.Helper()
	s, err := New(root, ro)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "sock")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	server, guest := conn(fds[0]), conn(fds[1])
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, server) }()
	c, err := p9.NewClient(guest, p9.WithMessageSize(256*1024))
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Attach("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		s.Close()
	})
	return f
}

func walk(t testing.TB, dir p9.File, names ...string) p9.File {
	t.Helper()
	_, f, err := dir.Walk(names)
	if err != nil {
		t.Fatalf("walk %q: %v", names, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readAll(t testing.TB, f p9.File) string {
	t.Helper()
	if _, _, err := f.Open(p9.ReadOnly); err != nil {
		t.Fatalf("open: %v", err)
	}
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := f.ReadAt(buf, int64(len(out)))
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return string(out)
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
}

func names(t testing.TB, dir p9.File) []string {
	t.Helper()
	d := walk(t, dir)
	if _, _, err := d.Open(p9.ReadOnly); err != nil {
		t.Fatal(err)
	}
	var got []string
	var off uint64
	for {
		ents, err := d.Readdir(off, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			got = append(got, e.Name)
			off = e.Offset
		}
	}
	sort.Strings(got)
	return got
}

func TestFileOperations(t *testing.T) {
	root, _ := layout(t)
	r := serve(t, root, false)

	if got := readAll(t, walk(t, r, "hello.txt")); got != "hello" {
		t.Errorf("read hello.txt = %q", got)
	}
	if got := readAll(t, walk(t, r, "sub", "f")); got != "inside" {
		t.Errorf("read sub/f = %q", got)
	}

	// Create and write; the host sees it, owned by this process's user.
	nf, _, _, err := walk(t, r).Create("new.txt", p9.ReadWrite, 0o4755, 0, 0)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := nf.WriteAt([]byte("written in the guest"), 0); err != nil {
		t.Fatalf("write: %v", err)
	}
	nf.Close()
	hostPath := filepath.Join(root, "new.txt")
	if b, err := os.ReadFile(hostPath); err != nil || string(b) != "written in the guest" {
		t.Errorf("host reads %q, %v", b, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(hostPath, &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() {
		t.Errorf("created file owned by %d:%d, want %d:%d", st.Uid, st.Gid, os.Getuid(), os.Getgid())
	}
	if st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		t.Errorf("created file mode %o keeps set-ID bits", st.Mode)
	}

	// Attributes.
	_, _, attr, err := walk(t, r, "new.txt").GetAttr(p9.AttrMaskAll)
	if err != nil {
		t.Fatal(err)
	}
	if attr.Size != uint64(len("written in the guest")) || int(attr.UID) != os.Getuid() {
		t.Errorf("getattr: size %d uid %d", attr.Size, attr.UID)
	}
	f := walk(t, r, "new.txt")
	if err := f.SetAttr(p9.SetAttrMask{Permissions: true, Size: true, UID: true, GID: true},
		p9.SetAttr{Permissions: 0o600, Size: 7, UID: 0, GID: 0}); err != nil {
		t.Fatalf("setattr: %v", err)
	}
	fi, err := os.Stat(hostPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 7 {
		t.Errorf("after setattr: mode %v size %d, want 0600 and 7", fi.Mode(), fi.Size())
	}
	if err := unix.Stat(hostPath, &st); err != nil || int(st.Uid) != os.Getuid() {
		t.Errorf("a chown from the guest changed the owner to %d (%v)", st.Uid, err)
	}

	// Mkdir, rename, readdir, unlink.
	dir := walk(t, r)
	if _, err := dir.Mkdir("made", 0o755, 0, 0); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	made := walk(t, r, "made")
	if err := dir.RenameAt("new.txt", made, "moved.txt"); err != nil {
		t.Fatalf("renameat: %v", err)
	}
	if got := readAll(t, walk(t, r, "made", "moved.txt")); got != "written" {
		t.Errorf("moved file reads %q", got)
	}
	if err := walk(t, r, "hello.txt").Rename(made, "hello2.txt"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if got, want := names(t, made), []string{"hello2.txt", "moved.txt"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("readdir made = %v, want %v", got, want)
	}
	if _, err := dir.Symlink("made/hello2.txt", "rel", 0, 0); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	if s, err := walk(t, r, "rel").Readlink(); err != nil || s != "made/hello2.txt" {
		t.Errorf("readlink = %q, %v", s, err)
	}
	if err := made.UnlinkAt("moved.txt", 0); err != nil {
		t.Fatalf("unlink: %v", err)
	}
	if err := made.UnlinkAt("hello2.txt", 0); err != nil {
		t.Fatalf("unlink: %v", err)
	}
	if err := dir.UnlinkAt("made", linuxRemoveDir); err != nil {
		t.Fatalf("rmdir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "made")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("made still there: %v", err)
	}
	if _, err := dir.Mknod("dev", p9.ModeCharacterDevice|0o666, 1, 3, 0, 0); err == nil {
		t.Error("mknod of a device node succeeded")
	}
	if got, want := names(t, r), []string{"dirlink", "dotdot", "filelink", "rel", "sub", "uplink"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("readdir root = %v, want %v", got, want)
	}
}

func TestReadOnlyRefusedHostSide(t *testing.T) {
	root, _ := layout(t)
	r := serve(t, root, true)
	if got := readAll(t, walk(t, r, "hello.txt")); got != "hello" {
		t.Errorf("read = %q", got)
	}
	isROFS := func(op string, err error) {
		t.Helper()
		if linux.ExtractErrno(err) != linux.EROFS {
			t.Errorf("%s on a read-only share: %v, want EROFS", op, err)
		}
	}
	_, _, err := walk(t, r, "hello.txt").Open(p9.ReadWrite)
	isROFS("open rw", err)
	_, _, err = walk(t, r, "hello.txt").Open(p9.WriteOnly)
	isROFS("open wo", err)
	_, _, _, err = walk(t, r).Create("x", p9.ReadWrite, 0o644, 0, 0)
	isROFS("create", err)
	_, err = walk(t, r).Mkdir("d", 0o755, 0, 0)
	isROFS("mkdir", err)
	isROFS("unlink", walk(t, r).UnlinkAt("hello.txt", 0))
	isROFS("rename", walk(t, r).RenameAt("hello.txt", walk(t, r), "y"))
	isROFS("setattr", walk(t, r, "hello.txt").SetAttr(p9.SetAttrMask{Size: true}, p9.SetAttr{}))
	_, err = walk(t, r).Symlink("hello.txt", "l", 0, 0)
	isROFS("symlink", err)
	if b, _ := os.ReadFile(filepath.Join(root, "hello.txt")); string(b) != "hello" {
		t.Errorf("hello.txt changed to %q", b)
	}
}

func TestSymlinksAreNotFollowedOut(t *testing.T) {
	root, _ := layout(t)
	r := serve(t, root, false)
	for _, p := range [][]string{
		{"dirlink", "f"}, {"uplink", "f"}, {"dotdot", "f"}, {"dotdot", "outside", "f"},
		{"..", "f"}, {"..", "outside", "f"}, {"sub", "..", "..", "f"}, {"a/b"}, {"../f"}, {"/etc"}, {"f\x00"},
	} {
		if _, f, err := r.Walk(p); err == nil {
			f.Close()
			t.Errorf("walk %q succeeded", p)
		}
	}
	for _, link := range []string{"filelink", "dirlink", "uplink", "dotdot"} {
		f := walk(t, r, link)
		if _, _, err := f.Open(p9.ReadOnly); err == nil {
			t.Errorf("opening symlink %s succeeded", link)
		}
		if s, err := f.Readlink(); err != nil || s == "" {
			t.Errorf("readlink %s = %q, %v", link, s, err)
		}
	}
}

// TestSwappedSymlinkRace flips sub between a directory inside the share
// and a symlink to a directory outside it while the guest walks and
// reads sub/f: the secret must never be read.
func TestSwappedSymlinkRace(t *testing.T) {
	root, outside := layout(t)
	r := serve(t, root, false)
	sub := filepath.Join(root, "sub")
	parked := filepath.Join(root, "parked")
	ctx, cancel := context.WithCancel(context.Background())
	flipped := make(chan int)
	go func() {
		n := 0
		defer func() { flipped <- n }()
		for ctx.Err() == nil {
			if err := os.Rename(sub, parked); err != nil {
				t.Error(err)
				return
			}
			if err := os.Symlink(outside, sub); err != nil {
				t.Error(err)
				return
			}
			if err := os.Remove(sub); err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(parked, sub); err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()
	reads := 0
	for i := 0; i < 3000; i++ {
		_, f, err := r.Walk([]string{"sub", "f"})
		if err != nil {
			continue
		}
		// Flip while the walked file is held, then open it.
		if _, _, err := f.Open(p9.ReadOnly); err == nil {
			buf := make([]byte, 64)
			n, _ := f.ReadAt(buf, 0)
			if bytes.Contains(buf[:n], []byte("SECRET")) {
				t.Fatalf("read the secret outside the share through sub/f")
			}
			reads++
		}
		f.Close()
	}
	cancel()
	n := <-flipped
	t.Logf("%d reads of sub/f, none outside, while sub flipped %d times", reads, n)
	if n == 0 || reads == 0 {
		t.Fatalf("the race did not run: %d flips, %d reads", n, reads)
	}
}

// TestExchangedSymlinkRace swaps sub and a symlink to the outside
// folder atomically (renameat2 RENAME_EXCHANGE: at every instant one of
// the two names is the link) while the guest walks sub, then f from it,
// reads f and lists sub: nothing outside may be read or listed.
func TestExchangedSymlinkRace(t *testing.T) {
	root, outside := layout(t)
	if err := os.WriteFile(filepath.Join(outside, "only-outside"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := serve(t, root, false)
	sub, link := filepath.Join(root, "sub"), filepath.Join(root, "sublink")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	swapped := make(chan int)
	go func() {
		n := 0
		for ctx.Err() == nil {
			if err := unix.Renameat2(unix.AT_FDCWD, sub, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE); err != nil {
				t.Error(err)
				break
			}
			n++
		}
		swapped <- n
	}()
	reads, lists := 0, 0
	for i := 0; i < 2000; i++ {
		_, d, err := r.Walk([]string{"sub"})
		if err != nil {
			continue
		}
		if _, f, err := d.Walk([]string{"f"}); err == nil {
			if _, _, err := f.Open(p9.ReadOnly); err == nil {
				buf := make([]byte, 64)
				n, _ := f.ReadAt(buf, 0)
				if bytes.Contains(buf[:n], []byte("SECRET")) {
					t.Fatal("read the secret outside the share through sub/f")
				}
				reads++
			}
			f.Close()
		}
		if _, _, err := d.Open(p9.ReadOnly); err == nil {
			ents, _ := d.Readdir(0, 4096)
			for _, e := range ents {
				if e.Name == "only-outside" {
					t.Fatal("listed the folder outside the share through sub")
				}
			}
			lists++
		}
		d.Close()
	}
	cancel()
	n := <-swapped
	t.Logf("%d reads and %d listings of sub, none outside, while it was exchanged %d times", reads, lists, n)
	if n == 0 || reads == 0 || lists == 0 {
		t.Fatalf("the race did not run: %d exchanges, %d reads, %d listings", n, reads, lists)
	}
}

// FuzzWalkNames walks arbitrary names (with "/", "..", NUL, very long
// ones) from the root and from sub: nothing outside the share may be
// walked to or read.
func FuzzWalkNames(f *testing.F) {
	for _, s := range []string{"..", ".", "", "/", "a/b", "../outside", "dirlink", "uplink", "dotdot", "f\x00x",
		"sub", "hello.txt", strings.Repeat("a", 256), strings.Repeat("../", 100), "\x00", "sub/../.."} {
		f.Add(s, "f")
	}
	root, _ := layout(f)
	s, err := New(root, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	inside := map[uint64]bool{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			inside[fi.Sys().(*syscall.Stat_t).Ino] = true
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, a, b string) {
		r, err := s.Attach()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for _, p := range [][]string{{a}, {a, b}, {"sub", a}, {a, "..", b}} {
			qids, nf, err := r.Walk(p)
			if err != nil {
				continue
			}
			for _, q := range qids {
				if !inside[q.Path] {
					t.Errorf("walk %q reached inode %d, not in the share", p, q.Path)
				}
			}
			if _, _, err := nf.Open(p9.ReadOnly); err == nil {
				buf := make([]byte, 64)
				n, _ := nf.ReadAt(buf, 0)
				if bytes.Contains(buf[:n], []byte("SECRET")) {
					t.Errorf("walk %q read the secret", p)
				}
			}
			nf.Close()
		}
	})
}

// TestBoundedLoad: 10,000 small files created through the server and
// read back through it, the way a guest's 9P client does it (walk,
// create, write, clunk; walk, open, read, clunk), leave the host with
// every file whole and the server holding no more descriptors than
// before: nothing is kept per file once the client lets go of it. The
// same server in a real guest is TestRunTimeShares (app), which runs
// fewer files: under QEMU's TCG each file costs ~15 round trips of
// milliseconds (docs/BENCHMARKS.md).
func TestBoundedLoad(t *testing.T) {
	const files = 10000
	root := t.TempDir()
	r := serve(t, root, false)
	if _, err := r.Mkdir("many", 0o755, p9.NoUID, p9.NoGID); err != nil {
		t.Fatal(err)
	}
	openFDs := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := openFDs()
	content := func(i int) string { return "file " + strconv.Itoa(i) + "\n" }
	for i := range files {
		_, dir, err := r.Walk([]string{"many"})
		if err != nil {
			t.Fatalf("walk many: %v", err)
		}
		f, _, _, err := dir.Create("f"+strconv.Itoa(i), p9.WriteOnly, 0o644, p9.NoUID, p9.NoGID)
		if err != nil {
			t.Fatalf("create file %d: %v", i, err)
		}
		if _, err := f.WriteAt([]byte(content(i)), 0); err != nil {
			t.Fatalf("write file %d: %v", i, err)
		}
		f.Close()
		dir.Close()
	}
	held := func(what string) {
		t.Helper()
		// Clunks are answered before the client returns, so the server
		// has let go of each file by now; a few descriptors of slack
		// for the runtime.
		if n := openFDs(); n > before+2 {
			t.Errorf("the process holds %d descriptors after %s %d files, %d before: the server keeps files open", n, what, files, before)
		}
	}
	held("creating")
	for i := range files {
		_, f, err := r.Walk([]string{"many", "f" + strconv.Itoa(i)})
		if err != nil {
			t.Fatalf("walk to file %d: %v", i, err)
		}
		if got := readAll(t, f); got != content(i) {
			t.Fatalf("file %d reads %q, want %q", i, got, content(i))
		}
		f.Close()
	}
	held("reading")
	if got := names(t, walk(t, r, "many")); len(got) != files {
		t.Errorf("the folder lists %d files, want %d", len(got), files)
	}
	ents, err := os.ReadDir(filepath.Join(root, "many"))
	if err != nil || len(ents) != files {
		t.Fatalf("the host has %d files (%v), want %d", len(ents), err, files)
	}
	if b, err := os.ReadFile(filepath.Join(root, "many", "f9999")); err != nil || string(b) != content(9999) {
		t.Errorf("the last file on the host: %q, %v", b, err)
	}
}
