package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/internal/testenv"
)

// waitTemplate waits for the daemon on h to have saved a fast-start
// template in dir and returns its path.
func waitTemplate(t *testing.T, h, dir string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, _ := filepath.Glob(filepath.Join(dir, "*.state"))
		if len(m) == 1 {
			return m[0]
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(daemonLog(t, h))
			t.Fatalf("no template after %v (found %q); daemon log:\n%s", timeout, m, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func daemonLog(t *testing.T, h string) string {
	t.Helper()
	hh, err := home.Resolve(h)
	if err != nil {
		t.Fatal(err)
	}
	return hh.LogFile()
}

// spareReady matches the status line of a ready spare VM.
var spareReady = regexp.MustCompile(`spare VMs: template ([0-9a-f]+) ready for [^ ]+ \(pid ([0-9]+)\)`)

// waitSpare waits until the daemon on h says its spare VM is ready and
// returns its QEMU's pid.
func waitSpare(t *testing.T, h string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := mustOK(t, "system status", berth(t, h, "system", "status")).out
		if m := spareReady.FindStringSubmatch(st); m != nil {
			pid, _ := strconv.Atoi(m[2])
			return pid
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(daemonLog(t, h))
			t.Fatalf("no spare VM ready after %v; status:\n%s\ndaemon log:\n%s", timeout, st, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// guestFacts is what one warm container says about its VM.
type guestFacts struct {
	random, bootID, mac, ip string
	skew                    time.Duration // guest clock - host clock
}

// facts runs one exec in container id and parses it; the guest's clock is
// compared with the host's midway through the call, within the call's
// own duration.
func facts(t *testing.T, h, id string) guestFacts {
	t.Helper()
	before := time.Now()
	r := mustOK(t, "exec facts", berth(t, h, "exec", id, "sh", "-c",
		`date +%s; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; echo; cat /proc/sys/kernel/random/boot_id /sys/class/net/eth0/address; ip -o -4 addr show eth0`))
	after := time.Now()
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 5 {
		t.Fatalf("exec facts: want 5 lines, got:\n%s", r.out)
	}
	secs, err := strconv.ParseInt(lines[0], 10, 64)
	if err != nil {
		t.Fatalf("guest date %q: %v", lines[0], err)
	}
	// busybox's date has whole seconds: the guest's clock read somewhere
	// in [secs, secs+1).
	lo, hi := time.Unix(secs, 0), time.Unix(secs+1, 0)
	var skew time.Duration
	switch {
	case hi.Before(before):
		skew = hi.Sub(before)
	case lo.After(after):
		skew = lo.Sub(after)
	}
	var ip string
	if f := strings.Fields(lines[4]); len(f) >= 4 {
		ip = f[3]
	}
	return guestFacts{random: lines[1], bootID: lines[2], mac: lines[3], ip: ip, skew: skew}
}

// TestFastStart runs containers on a daemon (fast start is on by
// default) with a template directory of its own: the first two boot
// cold and the second leaves a template behind; later ones are restored from it and
// behave as cold ones do (output, exit code, exec, tty, stop), while no
// two share random state, boot ID, MAC or IP, and each has the host's
// time. A daemon on another home restores from the same template. A
// corrupt template falls back to a cold boot, as --cold and
// --fast-start=false ask for one.
//
// After its first restore the daemon keeps a spare VM restored ahead;
// the next starts claim it (the root disk, the NIC and the guest's
// completion handed over at the claim: two claimed VMs still differ in
// random state, boot ID, MAC and IP). A spare that died falls back to a
// restore; --spare-idle=0 keeps none; the daemon's shutdown stops it.
func TestFastStart(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "fast", testenv.BusyboxImage(t, nil))
	h := shortHome(t)
	// Its own templates: this test corrupts one.
	tdir := filepath.Join(t.TempDir(), "templates")
	tenv := launcher.TemplateDirEnv + "=" + tdir
	startDaemonWith(t, h, nil, []string{"--spare-idle=10m"}, tenv) // the default; the tests' daemons keep none unless asked
	mustOK(t, "pull", berth(t, h, "pull", ref))
	logFile := daemonLog(t, h)
	restoredIn := func(logFile string) int {
		b, _ := os.ReadFile(logFile)
		return bytes.Count(b, []byte("fast start: restored from a template"))
	}
	restored := func() int { return restoredIn(logFile) }
	claimed := func() int {
		b, _ := os.ReadFile(logFile)
		return bytes.Count(b, []byte("fast start: claimed a spare VM"))
	}

	// A layout's second cold boot builds its template.
	mustOK(t, "first run (cold)", berth(t, h, "run", "--rm", ref, "true"))
	if m, _ := filepath.Glob(filepath.Join(tdir, "*.state")); len(m) != 0 {
		t.Fatalf("a template %q after one cold boot", m)
	}
	mustOK(t, "second run (cold)", berth(t, h, "run", "--rm", ref, "true"))
	tpl := waitTemplate(t, h, tdir, 2*time.Minute)
	if st := mustOK(t, "system status", berth(t, h, "system", "status")).out; !strings.Contains(st, "Fast start:  on: 1 VM template") || !strings.Contains(st, "template "+strings.TrimSuffix(filepath.Base(tpl), ".state")) {
		t.Errorf("system status does not show fast start on with its template:\n%s", st)
	}
	if fi, err := os.Stat(tpl); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("template %s: %v, mode %v; want 0600", tpl, err, fi.Mode())
	}

	start := time.Now()
	r := berth(t, h, "run", "--rm", ref, "sh", "-c", "echo hi; echo oops >&2; exit 3")
	if r.code != 3 || r.out != "hi\n" || !strings.Contains(r.err, "oops") {
		t.Fatalf("warm run: %+v", r)
	}
	t.Logf("warm run --rm (exit 3) took %v", time.Since(start).Round(time.Millisecond))
	if n := restored(); n != 1 {
		b, _ := os.ReadFile(logFile)
		t.Fatalf("%d restores logged after the warm run, want 1; daemon log:\n%s", n, b)
	}

	// The restore left a spare VM behind; each run -d claims one.
	var ids []string
	for i := 0; i < 2; i++ {
		pid := waitSpare(t, h, time.Minute)
		if st := mustOK(t, "system status", berth(t, h, "system", "status")).out; !strings.Contains(st, "spare VMs: template "+strings.TrimSuffix(filepath.Base(tpl), ".state")+" ready") {
			t.Errorf("system status does not show the spare VM of the template:\n%s", st)
		}
		ids = append(ids, strings.TrimSpace(mustOK(t, "run -d", berth(t, h, "run", "-d", ref, "sleep", "300")).out))
		if n := claimed(); n != i+1 {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("%d claims of a spare VM logged after run -d #%d (spare pid %d), want %d; daemon log:\n%s", n, i+1, pid, i+1, log)
		}
	}
	a, b := facts(t, h, ids[0]), facts(t, h, ids[1])
	t.Logf("restored guests: %+v / %+v", a, b)
	for _, f := range []guestFacts{a, b} {
		if f.skew > time.Second || f.skew < -time.Second {
			t.Errorf("guest clock off the host's by %v", f.skew)
		}
		if len(f.random) != 32 || f.bootID == "" || f.mac == "" || f.ip == "" {
			t.Errorf("incomplete facts %+v", f)
		}
	}
	if a.random == b.random || a.bootID == b.bootID || a.mac == b.mac || a.ip == b.ip {
		t.Errorf("two VMs restored from one template share state: %+v / %+v", a, b)
	}

	// A run-time share on a restored VM takes its first spare port (the
	// ports' state came through the template too).
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte("shared\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustOK(t, "share add (restored)", berth(t, h, "share", "add", "--target", "/mnt/d", ids[0], dir))
	if r := mustOK(t, "share read (restored)", berth(t, h, "exec", ids[0], "sh", "-c", "grep ' /mnt/d ' /proc/mounts; cat /mnt/d/f.txt")); !strings.HasPrefix(r.out, "port0 ") || !strings.HasSuffix(r.out, "shared\n") {
		t.Errorf("a run-time share on a restored VM: want it on spare port 0 and the file read: %q", r.out)
	}

	// A tty on a restored VM.
	s := startPTY(t, h, 24, 80, "run", "-t", "-i", "--rm", ref, "sh")
	at := s.expect(0, "/ # ")
	s.send("stty size; tty; exit 5\n")
	s.expect(at, "/dev/pts/")
	if code := s.wait(); code != 5 {
		t.Fatalf("tty run: exit %d, want 5; screen:\n%s", code, s.output())
	}

	start = time.Now()
	mustOK(t, "stop", berth(t, h, "stop", "-t", "2", ids[0]))
	t.Logf("stop of a restored VM took %v", time.Since(start).Round(time.Millisecond))
	var insp []struct{ State struct{ Status string } }
	if err := json.Unmarshal([]byte(mustOK(t, "inspect", berth(t, h, "inspect", ids[0])).out), &insp); err != nil || len(insp) != 1 || insp[0].State.Status != "exited" {
		t.Errorf("after stop: %+v, %v", insp, err)
	}
	mustOK(t, "rm", berth(t, h, "rm", "-f", ids[0], ids[1]))
	if n, c := restored(), claimed(); n+c != 4 || c < 2 {
		t.Errorf("%d restores and %d claims of a spare logged, want 4 in all (run, two -d, tty), 2 claims at least", n, c)
	}

	// --cold boots cold on a fast-start daemon.
	warm := restored() + claimed()
	mustOK(t, "run --cold", berth(t, h, "run", "--rm", "--cold", ref, "true"))
	if log, _ := os.ReadFile(logFile); !bytes.Contains(log, []byte("booting cold as asked")) || restored()+claimed() != warm {
		t.Errorf("run --cold was not a cold boot; daemon log:\n%s", log)
	}

	// A spare VM that died: the next start restores instead, and says
	// why in the log.
	pid := waitSpare(t, h, time.Minute)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n := restored()
	if r := mustOK(t, "run (spare killed)", berth(t, h, "run", "--rm", ref, "echo", "after the spare died")); r.out != "after the spare died\n" {
		t.Errorf("run after the spare VM died: %+v", r)
	}
	if log, _ := os.ReadFile(logFile); restored() != n+1 || !(bytes.Contains(log, []byte("fast start: the spare VM ended")) || bytes.Contains(log, []byte("fast start: the spare VM failed"))) {
		t.Errorf("a dead spare VM: no restore after it, or no reason logged; daemon log:\n%s", log)
	}
	// The daemon's shutdown stops its spare VM.
	pid = waitSpare(t, h, time.Minute)
	if d, ok := daemons.Load(h); ok {
		d.(*exec.Cmd).Process.Signal(syscall.SIGTERM)
	}
	for deadline := time.Now().Add(30 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the spare VM (pid %d) outlived its daemon's shutdown", pid)
		}
	}

	// A daemon on another home shares the template; one started with
	// --fast-start=false boots cold and says so in its status.
	// It keeps no spare VM (--spare-idle=0): the corrupt template below
	// is restored from, not a spare restored before.
	h2 := shortHome(t)
	startDaemonWith(t, h2, nil, []string{"--spare-idle=0"}, tenv)
	mustOK(t, "pull (second home)", berth(t, h2, "pull", ref))
	if r := mustOK(t, "run (second home)", berth(t, h2, "run", "--rm", ref, "echo", "other home")); r.out != "other home\n" || restoredIn(daemonLog(t, h2)) != 1 {
		log, _ := os.ReadFile(daemonLog(t, h2))
		t.Errorf("a daemon on another home did not restore from the shared template: %+v; its log:\n%s", r, log)
	}
	if st := mustOK(t, "system status (no spares)", berth(t, h2, "system", "status")).out; !strings.Contains(st, "spare VMs: none kept: turned off") {
		t.Errorf("system status of a --spare-idle=0 daemon:\n%s", st)
	}
	h3 := shortHome(t)
	startDaemonWith(t, h3, nil, []string{"--fast-start=false"}, tenv)
	if st := mustOK(t, "system status (off)", berth(t, h3, "system", "status")).out; !strings.Contains(st, "Fast start:  off") {
		t.Errorf("system status of a --fast-start=false daemon:\n%s", st)
	}

	// A corrupt template: the container still runs, booted cold, the
	// reason is logged and the template is dropped (to be rebuilt).
	junk := make([]byte, 1<<20)
	rand.Read(junk)
	if err := os.WriteFile(tpl, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustOK(t, "run on a corrupt template", berth(t, h2, "run", "--rm", ref, "echo", "still runs"))
	if r.out != "still runs\n" {
		t.Fatalf("run on a corrupt template: %+v", r)
	}
	log, _ := os.ReadFile(daemonLog(t, h2))
	i := bytes.LastIndex(log, []byte("fast start: booting cold"))
	if i < 0 || !bytes.Contains(log[i:], []byte("restore from template")) {
		t.Errorf("no cold-boot reason naming the restore in the daemon log:\n%s", log)
	}
	if restoredIn(daemonLog(t, h2)) != 1 {
		t.Errorf("a corrupt template was restored from")
	}
}
