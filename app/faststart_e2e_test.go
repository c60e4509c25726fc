package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
func TestFastStart(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "fast", testenv.BusyboxImage(t, nil))
	h := shortHome(t)
	// Its own templates: this test corrupts one.
	tdir := filepath.Join(t.TempDir(), "templates")
	tenv := launcher.TemplateDirEnv + "=" + tdir
	startDaemon(t, h, tenv)
	mustOK(t, "pull", berth(t, h, "pull", ref))
	logFile := daemonLog(t, h)
	restoredIn := func(logFile string) int {
		b, _ := os.ReadFile(logFile)
		return bytes.Count(b, []byte("fast start: restored from a template"))
	}
	restored := func() int { return restoredIn(logFile) }

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

	var ids []string
	for i := 0; i < 2; i++ {
		ids = append(ids, strings.TrimSpace(mustOK(t, "run -d", berth(t, h, "run", "-d", ref, "sleep", "300")).out))
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
	if n := restored(); n != 4 {
		t.Errorf("%d restores logged, want 4 (run, two -d, tty)", n)
	}

	// --cold boots cold on a fast-start daemon.
	mustOK(t, "run --cold", berth(t, h, "run", "--rm", "--cold", ref, "true"))
	if log, _ := os.ReadFile(logFile); !bytes.Contains(log, []byte("booting cold as asked")) || restored() != 4 {
		t.Errorf("run --cold was not a cold boot; daemon log:\n%s", log)
	}

	// A daemon on another home shares the template; one started with
	// --fast-start=false boots cold and says so in its status.
	h2 := shortHome(t)
	startDaemon(t, h2, tenv)
	mustOK(t, "pull (second home)", berth(t, h2, "pull", ref))
	if r := mustOK(t, "run (second home)", berth(t, h2, "run", "--rm", ref, "echo", "other home")); r.out != "other home\n" || restoredIn(daemonLog(t, h2)) != 1 {
		log, _ := os.ReadFile(daemonLog(t, h2))
		t.Errorf("a daemon on another home did not restore from the shared template: %+v; its log:\n%s", r, log)
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
	r = mustOK(t, "run on a corrupt template", berth(t, h, "run", "--rm", ref, "echo", "still runs"))
	if r.out != "still runs\n" {
		t.Fatalf("run on a corrupt template: %+v", r)
	}
	log, _ := os.ReadFile(logFile)
	i := bytes.LastIndex(log, []byte("fast start: booting cold"))
	if i < 0 || !bytes.Contains(log[i:], []byte("restore from template")) {
		t.Errorf("no cold-boot reason naming the restore in the daemon log:\n%s", log)
	}
	if restored() != 4 {
		t.Errorf("a corrupt template was restored from")
	}
}
