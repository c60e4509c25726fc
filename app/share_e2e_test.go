package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestRunTimeShares boots one real VM and shares folders with it while
// it runs (berth share, docs/sharing.md "Run-time shares"):
//   - share add into a running container: its shell sees the files at
//     /mnt/<folder name>; files it writes land on the host owned by the
//     user who runs Berth (nobody, when the test runs as root);
//   - symlinks in the folder that point out of it (relative and
//     absolute) lead nowhere; sharing the folder twice, or a file, is
//     refused with a clear error;
//   - 2,000 small files (500 under the race detector: shareSmallFiles)
//     created in the guest and read back on both sides; a 200 MB file
//     copied host → guest and guest → host with matching SHA-256;
//   - while the host keeps swapping a folder in the share with a symlink
//     to a folder outside it, the guest reading through it never gets
//     the outside file;
//   - a second container running alongside has no such mount and no
//     folder at the target;
//   - share rm unmounts it; the VM's spare ports are used again after
//     share rm (more shares over a run than ports), and a share beyond
//     the free ports goes over the agent transport;
//   - a share added to a stopped container, and one added while it ran,
//     are both there after the next start.
//
// shareBigFile is the size of the file TestRunTimeShares copies each way.
const shareBigFile = 200 << 20

func TestRunTimeShares(t *testing.T) {
	start := time.Now()
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "share", testenv.BusyboxImage(t, nil))
	home := shortHome(t)
	base := t.TempDir()
	proj, other := filepath.Join(base, "proj"), filepath.Join(base, "other")
	fillers := make([]string, container.RunSharePorts-1)
	for i := range fillers {
		fillers[i] = filepath.Join(base, "fill"+strconv.Itoa(i))
	}
	for _, d := range append([]string{proj, other}, fillers...) {
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, b []byte) {
		t.Helper()
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(proj, "hello.txt"), []byte("hello from the host\n"))
	write(filepath.Join(other, "o.txt"), []byte("other\n"))
	write(filepath.Join(base, "secret"), []byte("host secret\n"))
	big := make([]byte, shareBigFile)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(proj, "big.bin"), big)
	bigSum := sha256.Sum256(big)
	for link, to := range map[string]string{"escape": "../secret", "abs": filepath.Join(base, "secret"), "up": ".."} {
		if err := os.Symlink(to, filepath.Join(proj, link)); err != nil {
			t.Fatal(err)
		}
	}
	owner, cred, env := unprivilegedDaemon(t, home, base)
	startDaemonAs(t, home, cred, env...)
	mustOK(t, "pull", berth(t, home, "pull", ref))
	mustOK(t, "run -d", berth(t, home, "run", "-d", "--name", "s1", ref, "sleep", "1000"))
	t.Logf("VM up after %v", time.Since(start))
	sh := func(script string) result {
		t.Helper()
		return berth(t, home, "exec", "s1", "sh", "-c", script)
	}

	if r := mustOK(t, "share add", berth(t, home, "share", "add", "s1", proj)); strings.TrimSpace(r.out) != "/mnt/proj" {
		t.Fatalf("share add printed %q, want /mnt/proj", r.out)
	}
	if r := mustOK(t, "cat", sh("cat /mnt/proj/hello.txt")); r.out != "hello from the host\n" {
		t.Errorf("the shared file in the guest: %q", r.out)
	}
	// The first share takes the VM's first spare port, not the agent
	// transport.
	if r := mustOK(t, "mounts", sh("grep ' /mnt/proj ' /proc/mounts")); !strings.HasPrefix(r.out, "port0 ") {
		t.Errorf("the share is not on spare port 0: %q", r.out)
	}
	mustOK(t, "write", sh("echo written in the guest > /mnt/proj/from-guest && mkdir /mnt/proj/dir"))
	for _, p := range []string{filepath.Join(proj, "from-guest"), filepath.Join(proj, "dir")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("the guest's write is not on the host: %v", err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != owner.Uid || st.Gid != owner.Gid {
			t.Errorf("%s is owned by %d:%d on the host, want the user running Berth (%d:%d)", p, st.Uid, st.Gid, owner.Uid, owner.Gid)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(proj, "from-guest")); string(b) != "written in the guest\n" {
		t.Errorf("the guest's file on the host: %q", b)
	}
	// Links out of the folder lead nowhere: the guest resolves them in
	// its own tree, and the server never follows them.
	if r := sh("cat /mnt/proj/escape /mnt/proj/abs /mnt/proj/up/secret 2>&1; ls /mnt/proj/up/ 2>&1"); strings.Contains(r.out, "host secret") {
		t.Errorf("a symlink led out of the share: %q", r.out)
	}
	if r := berth(t, home, "share", "add", "s1", proj); r.code == 0 || !strings.Contains(r.err, "already shared") {
		t.Errorf("sharing the folder twice: %+v", r)
	}
	if r := berth(t, home, "share", "add", "s1", filepath.Join(proj, "hello.txt")); r.code == 0 || !strings.Contains(r.err, "not a folder") {
		t.Errorf("sharing a file: %+v", r)
	}

	// Bounded load: small files, and a large one both ways.
	t0 := time.Now()
	n := strconv.Itoa(shareSmallFiles)
	// In the folder, as a build works: each file is then a lookup,
	// create, write and close, and a lookup, open, read and close,
	// without a walk of many/ for each (~30% fewer 9P round trips).
	r := mustOK(t, n+" files", sh(`mkdir /mnt/proj/many && cd /mnt/proj/many && i=0 && while [ $i -lt `+n+` ]; do echo $i > f$i; i=$((i+1)); done && cat * | wc -l`))
	if strings.TrimSpace(r.out) != n {
		t.Errorf("read back %q lines of %s files", r.out, n)
	}
	if ents, err := os.ReadDir(filepath.Join(proj, "many")); err != nil || len(ents) != shareSmallFiles {
		t.Errorf("the host has %d of the %s files (%v)", len(ents), n, err)
	}
	t.Logf("%s small files created and read back in %v", n, time.Since(t0))
	// The big file streams through the share and the guest's sha256sum
	// (no copy on the guest's disk: 200 MB would not fit the scratch space).
	t0 = time.Now()
	r = mustOK(t, "200 MB in", sh("dd if=/mnt/proj/big.bin bs=256k 2>/dev/null | sha256sum"))
	if got := strings.Fields(r.out); len(got) == 0 || got[0] != hex.EncodeToString(bigSum[:]) {
		t.Errorf("%d MB host → guest: sha256 %q, want %x", shareBigFile>>20, r.out, bigSum)
	}
	t.Logf("%d MB host → guest in %v", shareBigFile>>20, time.Since(t0))
	t0 = time.Now()
	// tee hashes the stream through a fifo; the second dd writes it to
	// the share in 1 MiB blocks (tee's own small writes would each be a
	// 9P round trip).
	r = mustOK(t, "200 MB out", sh(fmt.Sprintf("busybox mkfifo /tmp/sum.fifo && { sha256sum < /tmp/sum.fifo > /tmp/sum & } && dd if=/dev/urandom bs=1M count=%d 2>/dev/null | tee /tmp/sum.fifo | dd of=/mnt/proj/g.bin bs=1M iflag=fullblock 2>/dev/null && wait && cat /tmp/sum", shareBigFile>>20)))
	gs, gn, err := sha256File(filepath.Join(proj, "g.bin"))
	if got := strings.Fields(r.out); err != nil || len(got) == 0 || got[0] != hex.EncodeToString(gs) || gn != shareBigFile {
		t.Errorf("%d MB guest → host: guest sha256 %q, host %x (%d bytes, %v)", shareBigFile>>20, r.out, gs, gn, err)
	}
	t.Logf("%d MB guest → host in %v", shareBigFile>>20, time.Since(t0))
	os.Remove(filepath.Join(proj, "g.bin"))
	os.Remove(filepath.Join(proj, "big.bin"))

	// Symlink swap race: proj/swap flips between a folder in the share
	// and a symlink to one outside it while the guest reads swap/f.
	swapRace(t, proj, base, sh)

	// A second container alongside sees none of it: no 9P mount, nothing
	// at the target (its VM has no connection to this share's server).
	mustOK(t, "run -d s2", berth(t, home, "run", "-d", "--name", "s2", ref, "sleep", "1000"))
	r = mustOK(t, "s2 mounts", berth(t, home, "exec", "s2", "sh", "-c", "cat /proc/mounts; echo ---; ls -A /mnt/proj 2>&1; true"))
	if mounts, _, _ := strings.Cut(r.out, "---"); strings.Contains(mounts, " 9p ") || strings.Contains(mounts, "/mnt/proj") || !strings.Contains(mounts, " / ") {
		t.Errorf("the second container's mounts show the share (or are not its mounts): %q", mounts)
	}
	if strings.Contains(r.out, "hello.txt") || !strings.Contains(r.out, "No such file") {
		t.Errorf("the second container has something at /mnt/proj: %q", r.out)
	}
	mustOK(t, "rm -f s2", berth(t, home, "rm", "-f", "s2"))

	// share rm: gone in the guest.
	mustOK(t, "share rm", berth(t, home, "share", "rm", "s1", "/mnt/proj"))
	if r := sh("cat /mnt/proj/hello.txt"); r.code == 0 {
		t.Errorf("after share rm the guest still reads the folder: %q", r.out)
	}
	if r := mustOK(t, "share ls", berth(t, home, "share", "ls", "s1")); strings.Contains(r.out, proj) {
		t.Errorf("share ls after rm: %q", r.out)
	}

	// The spare ports are used again after share rm: with /src on one
	// and fillers on the rest, the next share goes over the agent
	// transport; once those are removed, a share added and removed more
	// times than there are ports gets the lowest free port every time.
	mustOK(t, "share add again", berth(t, home, "share", "add", "--target", "/src", "s1", proj))
	for i, f := range fillers {
		mustOK(t, "share add filler", berth(t, home, "share", "add", "--target", "/fill"+strconv.Itoa(i), "s1", f))
	}
	mustOK(t, "share add other", berth(t, home, "share", "add", "--target", "/spent", "s1", other))
	if r := mustOK(t, "over the agent", sh("grep -E ' (/src|/spent) ' /proc/mounts && cat /src/hello.txt /spent/o.txt")); !strings.Contains(r.out, " /src 9p ") || !regexp.MustCompile(`(?m)^run[0-9]+ /spent 9p `).MatchString(r.out) || !strings.HasSuffix(r.out, "hello from the host\nother\n") {
		t.Errorf("with every spare port in use, want /spent over an agent port (run*) and both shares readable: %q", r.out)
	}
	mustOK(t, "share rm other", berth(t, home, "share", "rm", "s1", "/spent"))
	for i := range fillers {
		mustOK(t, "share rm filler", berth(t, home, "share", "rm", "s1", "/fill"+strconv.Itoa(i)))
	}
	src := mustOK(t, "src port", sh("grep ' /src ' /proc/mounts")).out
	for i := 0; i <= container.RunSharePorts; i++ {
		mustOK(t, "share add other", berth(t, home, "share", "add", "--target", "/spent", "s1", other))
		r := mustOK(t, "reused port", sh("grep ' /spent ' /proc/mounts && cat /spent/o.txt"))
		if !strings.HasPrefix(r.out, "port") || strings.HasPrefix(src, strings.Fields(r.out)[0]+" ") || !strings.HasSuffix(r.out, "other\n") {
			t.Errorf("share %d after share rm: want it on a spare port again (not /src's %q) and readable: %q", i+1, strings.Fields(src)[0], r.out)
		}
		mustOK(t, "share rm other", berth(t, home, "share", "rm", "s1", "/spent"))
	}
	mustOK(t, "stop", berth(t, home, "stop", "-t", "1", "s1"))
	mustOK(t, "share add stopped", berth(t, home, "share", "add", "--ro", "s1", other))
	if r := mustOK(t, "share ls", berth(t, home, "share", "ls", "s1")); !strings.Contains(r.out, "/src") || !strings.Contains(r.out, "/mnt/other") {
		t.Errorf("share ls: %q", r.out)
	}
	mustOK(t, "start", berth(t, home, "start", "s1"))
	if r := mustOK(t, "after restart", sh("cat /src/hello.txt /mnt/other/o.txt")); r.out != "hello from the host\nother\n" {
		t.Errorf("shares after restart: %q", r.out)
	}
	if r := mustOK(t, "mounts after restart", sh("grep -cE '^port[0-9]+ (/src|/mnt/other) ' /proc/mounts")); strings.TrimSpace(r.out) != "2" {
		t.Errorf("after restart both shares should be on the new VM's spare ports: %q", r.out)
	}
	if r := sh("touch /mnt/other/nope"); r.code == 0 {
		t.Error("a read-only share accepted a write")
	}
	if _, err := os.Stat(filepath.Join(other, "nope")); err == nil {
		t.Error("a read-only share's folder got a file")
	}
	mustOK(t, "rm -f", berth(t, home, "rm", "-f", "s1"))
	t.Logf("done after %v", time.Since(start))
}

// sha256File returns the SHA-256 and size of the file at p.
func sha256File(p string) ([]byte, int, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return h.Sum(nil), int(n), err
}

// swapRace makes proj/swap (a folder holding f, "inside") and
// base/outside (holding f, the host's secret), then keeps exchanging
// proj/swap with a symlink to base/outside (renameat2 RENAME_EXCHANGE)
// on the host while the guest cats /mnt/proj/swap/f over and over. The
// guest may see errors mid-swap, but never the outside file, and it must
// have read the inside one (or the race did not run).
func swapRace(t *testing.T, proj, base string, sh func(string) result) {
	t.Helper()
	swap, link, outside := filepath.Join(proj, "swap"), filepath.Join(proj, "swap-link"), filepath.Join(base, "outside")
	for _, d := range []string{swap, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(swap, "f"), []byte("inside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "f"), []byte("host secret outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	swaps := make(chan int)
	go func() {
		n := 0
		for ctx.Err() == nil {
			if err := unix.Renameat2(unix.AT_FDCWD, swap, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("swap %s and %s: %v", swap, link, err)
				break
			}
			n++
			time.Sleep(time.Millisecond)
		}
		swaps <- n
	}()
	r := sh(`i=0; while [ $i -lt 150 ]; do cat /mnt/proj/swap/f 2>/dev/null; ls /mnt/proj/swap/ 2>/dev/null; i=$((i+1)); done`)
	cancel()
	n := <-swaps
	inside := strings.Count(r.out, "inside")
	t.Logf("symlink swap race: %d swaps on the host, %d reads of the inside file in the guest", n, inside)
	if strings.Contains(r.out, "secret") {
		t.Errorf("the guest read the file outside the share through the swapped symlink")
	}
	if n == 0 || inside == 0 {
		t.Errorf("the race did not run: %d swaps, %d inside reads (%q)", n, inside, r.out)
	}
}
