package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"
	"github.com/creack/pty"
)

// TestRunEchoExitCode boots a real micro-VM: `berth run --rm` of a
// busybox image prints the command's output and passes its exit code
// through, and the container is gone afterwards.
func TestRunEchoExitCode(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "run", testenv.BusyboxImage(t, nil))
	home := shortHome(t)
	startDaemon(t, home)
	r := berth(t, home, "run", "--rm", ref, "sh", "-c", "echo hi; echo oops >&2; exit 3")
	if r.code != 3 || r.out != "hi\n" || !strings.Contains(r.err, "oops") {
		t.Fatalf("run: %+v", r)
	}
	r = mustOK(t, "ps -a", berth(t, home, "ps", "-a", "-q"))
	if strings.TrimSpace(r.out) != "" {
		t.Fatalf("--rm container left: %q", r.out)
	}
}

// imageFixture is a daemon on a fresh home with a busybox image pushed to
// a real registry and pulled.
func imageFixture(t *testing.T) (home, ref string) {
	t.Helper()
	return imageFixtureWith(t, nil)
}

// imageFixtureWith is imageFixture with extra files (path → content) in
// the image.
func imageFixtureWith(t *testing.T, extra map[string]string) (home, ref string) {
	t.Helper()
	reg := testenv.StartRegistry(t)
	ref = reg.Push(t, "test/busybox", "e2e", testenv.BusyboxImage(t, extra))
	home = shortHome(t)
	startDaemon(t, home)
	mustOK(t, "pull", berth(t, home, "pull", ref))
	return home, ref
}

// ptySession runs berth under a pseudo-terminal, as a user at a shell.
type ptySession struct {
	t    *testing.T
	cmd  *exec.Cmd
	f    *os.File
	mu   sync.Mutex
	buf  strings.Builder
	done chan struct{}
}

func startPTY(t *testing.T, home string, rows, cols uint16, args ...string) *ptySession {
	t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(os.Environ(), "BERTH_HOME="+home, "TERM=xterm")
	return runPTY(t, cmd, rows, cols)
}

// runPTY starts cmd on a new pseudo-terminal of rows×cols and records
// everything it prints.
func runPTY(t *testing.T, cmd *exec.Cmd, rows, cols uint16) *ptySession {
	t.Helper()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	s := &ptySession{t: t, cmd: cmd, f: f, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			s.mu.Lock()
			s.buf.Write(b[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); f.Close() })
	return s
}

func (s *ptySession) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// expect waits until the output contains want (after from bytes).
func (s *ptySession) expect(from int, want string) int {
	s.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		out := s.output()
		if i := strings.Index(out[from:], want); i >= 0 {
			return from + i + len(want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("timed out waiting for %q; screen so far:\n%s", want, s.output())
	return 0
}

func (s *ptySession) send(text string) {
	if _, err := s.f.Write([]byte(text)); err != nil {
		s.t.Fatal(err)
	}
}

func (s *ptySession) wait() int {
	s.t.Helper()
	err := s.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return 0
}

// TestInteractiveTTY is the seed demo: `berth run -t -i IMG sh` gives a
// shell in its own micro-VM whose `ps aux` shows only the shell and ps;
// the window size follows the terminal; the exit code passes through and
// the terminal is restored.
func TestInteractiveTTY(t *testing.T) {
	home, ref := imageFixture(t)
	s := startPTY(t, home, 30, 100, "run", "-t", "-i", "--rm", ref, "sh")
	at := s.expect(0, "/ # ")
	// Markers are split in the command (RE""ADY) so the echo of the typed
	// line never matches them.
	s.send("stty size; echo RE\"\"ADY\n")
	at = s.expect(at, "READY\r\n")
	if !strings.Contains(s.output()[:at], "30 100") {
		t.Errorf("initial window size not applied:\n%s", s.output()[:at])
	}
	at = s.expect(at, "/ # ")
	s.send("ps aux; echo PS-DO\"\"NE\n")
	end := s.expect(at, "PS-DONE\r\n")
	psOut := s.output()[at:end]
	var procs []string
	for _, line := range strings.Split(psOut, "\r\n") {
		f := strings.Fields(line)
		// busybox's ps aux: PID USER COMMAND.
		if len(f) >= 3 && isDigits(f[0]) {
			procs = append(procs, strings.Join(f[2:], " "))
		}
	}
	// busybox's sh runs ps in a fork of itself: "{ps} sh".
	if len(procs) != 2 || procs[0] != "sh" || !strings.Contains(procs[1], "ps") {
		t.Fatalf("ps aux in the container should show only sh and ps, got %q from:\n%s", procs, psOut)
	}
	if err := pty.Setsize(s.f, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	// The resize travels CLI → API → agent asynchronously; poll.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mark := len(s.output())
		s.send("stty size\n")
		s.expect(mark, "/ # ")
		if strings.Contains(s.output()[mark:], "40 120") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resize not seen:\n%s", s.output()[mark:])
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.send("exit 7\n")
	if code := s.wait(); code != 7 {
		t.Fatalf("exit code %d, want 7; screen:\n%s", code, s.output())
	}
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// TestPipedStdinAndMissingCommand: non-tty -i carries piped input and its
// EOF; a command the image lacks fails with exit code 127, one it cannot
// execute with 126, like Docker.
func TestPipedStdinAndMissingCommand(t *testing.T) {
	home, ref := imageFixture(t)
	cmd := exec.Command(berthBin, "run", "-i", "--rm", ref, "sh", "-c", "cat; echo END")
	cmd.Env = append(os.Environ(), "BERTH_HOME="+home)
	cmd.Stdin = strings.NewReader("hello\nworld\n")
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "hello\nworld\nEND\n" {
		t.Fatalf("piped stdin: %v %q", err, out)
	}
	r := berth(t, home, "run", "--rm", ref, "nosuchcommand")
	if r.code != 127 || !strings.Contains(r.err, "nosuchcommand") || !strings.Contains(r.err, "executable file not found") {
		t.Fatalf("missing command: %+v", r)
	}
	// One that cannot be executed (a directory) is 126, as with Docker.
	r = berth(t, home, "run", "--rm", ref, "/etc")
	if r.code != 126 || !strings.Contains(r.err, `exec: "/etc": permission denied`) {
		t.Fatalf("command that is a directory: %+v", r)
	}
}

// TestDetachedLifecycle: run -d, logs -f, exec, inspect, stop, rm.
func TestDetachedLifecycle(t *testing.T) {
	home, ref := imageFixture(t)
	r := mustOK(t, "run -d", berth(t, home, "run", "-d", "--name", "ticker", "-l", "app=tick", "-e", "GREETING=hey", ref,
		"sh", "-c", "trap 'echo bye; exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"))
	id := strings.TrimSpace(r.out)
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want a 64-hex ID", r.out)
	}
	// logs -f streams as the container writes.
	logs := exec.Command(berthBin, "logs", "-f", "ticker")
	logs.Env = append(os.Environ(), "BERTH_HOME="+home)
	lp, _ := logs.StdoutPipe()
	if err := logs.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(lp)
	for i := 0; i < 3; i++ {
		if !sc.Scan() || sc.Text() != fmt.Sprintf("tick %d", i) {
			t.Fatalf("logs -f line %d: %q", i, sc.Text())
		}
	}
	r = mustOK(t, "ps", berth(t, home, "ps", "--filter", "label=app=tick"))
	if !strings.Contains(r.out, "ticker") || !strings.Contains(r.out, "Up ") || !strings.Contains(r.out, "192.168.127.2") {
		t.Fatalf("ps:\n%s", r.out)
	}
	r = mustOK(t, "exec", berth(t, home, "exec", "ticker", "sh", "-c", "echo $GREETING; ps | wc -l"))
	lines := strings.Fields(r.out)
	if len(lines) != 2 || lines[0] != "hey" {
		t.Fatalf("exec: %q", r.out)
	}
	r = berth(t, home, "exec", "ticker", "sh", "-c", "exit 5")
	if r.code != 5 {
		t.Fatalf("exec exit code: %+v", r)
	}
	r = mustOK(t, "exec -u -w", berth(t, home, "exec", "-u", "berth", "-w", "/tmp", "ticker", "sh", "-c", "id -u; pwd"))
	if r.out != "1000\n/tmp\n" {
		t.Fatalf("exec -u -w: %q", r.out)
	}
	mustOK(t, "exec -d", berth(t, home, "exec", "-d", "ticker", "touch", "/tmp/detached"))
	deadline := time.Now().Add(20 * time.Second)
	for berth(t, home, "exec", "ticker", "test", "-e", "/tmp/detached").code != 0 {
		if time.Now().After(deadline) {
			t.Fatal("exec -d did not run")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r = mustOK(t, "logs --timestamps", berth(t, home, "logs", "--timestamps", "-n", "1", "ticker"))
	if ts, line, ok := strings.Cut(strings.TrimSpace(r.out), " "); !ok || !strings.HasPrefix(line, "tick ") {
		t.Fatalf("logs --timestamps: %q", r.out)
	} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Fatalf("logs --timestamps: %q: %v", r.out, err)
	}
	// Values a user can get wrong are refused with the reason.
	r = berth(t, home, "run", "-m", "lots", ref, "true")
	if r.code != 125 || !strings.Contains(r.err, "--memory") {
		t.Fatalf("run -m lots: %+v", r)
	}
	r = berth(t, home, "run", "--name", "ticker", ref, "true")
	if r.code != 125 || !strings.Contains(r.err, `"/ticker" is already in use`) {
		t.Fatalf("name in use: %+v", r)
	}
	r = mustOK(t, "inspect", berth(t, home, "inspect", "ticker"))
	var insp []struct {
		ID    string `json:"Id"`
		Name  string
		State struct {
			Status  string
			Running bool
		}
		Config          struct{ Labels map[string]string }
		HostConfig      struct{ LogConfig struct{ Type string } }
		NetworkSettings struct{ IPAddress string }
	}
	if err := json.Unmarshal([]byte(r.out), &insp); err != nil || len(insp) != 1 {
		t.Fatalf("inspect: %v\n%s", err, r.out)
	}
	if i := insp[0]; i.ID != id || i.Name != "/ticker" || !i.State.Running || i.Config.Labels["app"] != "tick" || i.NetworkSettings.IPAddress != "192.168.127.2" || i.HostConfig.LogConfig.Type != "json-file" {
		t.Fatalf("inspect: %+v", insp[0])
	}
	r = mustOK(t, "stats", berth(t, home, "stats", "--no-stream", "ticker"))
	if f := strings.Fields(strings.Split(r.out, "\n")[1]); len(f) < 7 || f[1] != "ticker" || f[len(f)-1] == "0" {
		t.Fatalf("stats: %q", r.out)
	}
	mustOK(t, "stop", berth(t, home, "stop", "ticker"))
	// logs -f ends when the container stops, after its last words.
	rest := ""
	for sc.Scan() {
		rest = sc.Text()
	}
	if rest != "bye" {
		t.Fatalf("last log line %q, want bye", rest)
	}
	logs.Wait()
	r = mustOK(t, "ps -a", berth(t, home, "ps", "-a"))
	if !strings.Contains(r.out, "Exited (0)") {
		t.Fatalf("ps -a after stop:\n%s", r.out)
	}
	r = mustOK(t, "logs -n 1", berth(t, home, "logs", "-n", "1", "ticker"))
	if r.out != "bye\n" {
		t.Fatalf("logs -n 1: %q", r.out)
	}
	mustOK(t, "rm", berth(t, home, "rm", "ticker"))
	r = berth(t, home, "inspect", "ticker")
	if r.code == 0 || !strings.Contains(r.err, "No such container: ticker") {
		t.Fatalf("inspect after rm: %+v", r)
	}
}

// TestDaemonKilledMidRun: the daemon dies with SIGKILL while a container
// runs; its VM goes with it (no QEMU left), its published port with it
// (no listener left), and the restarted daemon shows the container as
// exited with the reason; nothing else is lost: started again, the
// container publishes its port again.
//
// Restart policies ride along: a --restart always container (the real
// docker CLI) whose process exits comes back at once, and after the
// engine's SIGKILL and restart it runs again, its published port with
// it, while victim (no policy) stays down.
func TestDaemonKilledMidRun(t *testing.T) {
	home, ref := imageFixture(t)
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	mustOK(t, "run -d", berth(t, home, "run", "-d", "--name", "victim", "-p", fmt.Sprintf("%d:80", port), ref,
		"sh", "-c", "mkdir -p /www && echo victim > /www/index.html && busybox httpd -p 80 -h /www && exec sleep 1000"))
	if body := getRetry(t, url, 60*time.Second); body != "victim\n" {
		t.Fatalf("victim's published port answered %q", body)
	}
	mustOK(t, "create", berth(t, home, "create", "--name", "bystander", ref, "true"))
	// Its first run exits 3; the ones after keep running (the rootfs
	// keeps /ran across restarts).
	phoenixPort := freePort(t)
	mustOK(t, "docker run --restart always", docker(t, home, "run", "-d", "--restart", "always", "--name", "phoenix",
		"-p", fmt.Sprintf("127.0.0.1:%d:80", phoenixPort), ref,
		"sh", "-c", "if [ -f /ran ]; then busybox httpd -p 80 -h /www && exec sleep 1000; fi; mkdir -p /www && echo phoenix > /www/index.html && touch /ran; exit 3"))
	waitInspect(t, home, "phoenix", "{{.State.Status}} {{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}", "running 1 always")
	st := mustOK(t, "inspect", berth(t, home, "inspect", "victim"))
	var insp []struct{ State struct{ Pid int } }
	if err := json.Unmarshal([]byte(st.out), &insp); err != nil || insp[0].State.Pid == 0 {
		t.Fatalf("inspect pid: %v %s", err, st.out)
	}
	vmPid := insp[0].State.Pid
	d := runningDaemon(t, home)
	if err := d.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The VM process dies with the engine (parent-death signal).
	deadline := time.Now().Add(20 * time.Second)
	for syscall.Kill(vmPid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("VM process %d outlived the engine", vmPid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("port %d still listens after the engine was killed", port)
	}
	startDaemon(t, home)
	// The always container comes back with the engine, its port with it;
	// victim does not.
	waitInspect(t, home, "phoenix", "{{.State.Status}}", "running")
	if body := getRetry(t, fmt.Sprintf("http://127.0.0.1:%d/", phoenixPort), 60*time.Second); body != "phoenix\n" {
		t.Fatalf("phoenix's published port after the engine's restart answered %q", body)
	}
	r := mustOK(t, "ps -a", berth(t, home, "ps", "-a"))
	if !strings.Contains(r.out, "victim") || !strings.Contains(r.out, "Exited (137)") || !strings.Contains(r.out, "bystander") || !strings.Contains(r.out, "Created") {
		t.Fatalf("after restart:\n%s", r.out)
	}
	r = mustOK(t, "inspect", berth(t, home, "inspect", "victim"))
	if !strings.Contains(r.out, "engine stopped while the container was running") {
		t.Fatalf("no reason recorded:\n%s", r.out)
	}
	// The container starts again; its VM killed from outside is reported
	// as the container's death, with the reason.
	mustOK(t, "start", berth(t, home, "start", "victim"))
	if body := getRetry(t, url, 60*time.Second); body != "victim\n" {
		t.Fatalf("victim's port after the engine's restart answered %q", body)
	}
	if r = mustOK(t, "port", berth(t, home, "port", "victim")); r.out != fmt.Sprintf("80/tcp -> 127.0.0.1:%d\n", port) {
		t.Fatalf("berth port victim after the engine's restart: %q", r.out)
	}
	st = mustOK(t, "inspect", berth(t, home, "inspect", "victim"))
	if err := json.Unmarshal([]byte(st.out), &insp); err != nil || insp[0].State.Pid == 0 {
		t.Fatalf("inspect pid: %v %s", err, st.out)
	}
	if err := syscall.Kill(insp[0].State.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r = mustOK(t, "wait", berth(t, home, "wait", "victim"))
	if strings.TrimSpace(r.out) != "137" {
		t.Fatalf("wait after the VM was killed: %q", r.out)
	}
	r = mustOK(t, "inspect", berth(t, home, "inspect", "victim"))
	if !strings.Contains(r.out, "the VM stopped") {
		t.Fatalf("no VM death reason:\n%s", r.out)
	}
	mustOK(t, "rm", berth(t, home, "rm", "victim"))
}

// testHealth: ctr's --health-cmd (test -f /tmp/healthy, every second,
// two retries) runs in its VM: it fails until the file exists
// (unhealthy), then passes (healthy); docker ps shows it and filters on
// it, inspect has the log, and the changes are events.
func testHealth(t *testing.T, home, ctr, since string) {
	// The failing streak goes on counting past the retries, as Docker's.
	waitInspect(t, home, ctr, "{{.State.Health.Status}} {{le 2 .State.Health.FailingStreak}}", "unhealthy true")
	mustOK(t, "exec touch", docker(t, home, "exec", ctr, "touch", "/tmp/healthy"))
	waitInspect(t, home, ctr, "{{.State.Health.Status}} {{.State.Health.FailingStreak}}", "healthy 0")
	r := mustOK(t, "ps health", docker(t, home, "ps", "--filter", "health=healthy", "--format", "{{.Names}} {{.Status}}"))
	if !strings.HasPrefix(r.out, ctr+" Up") || !strings.HasSuffix(r.out, "(healthy)\n") {
		t.Fatalf("docker ps --filter health=healthy: %q", r.out)
	}
	r = mustOK(t, "inspect log", docker(t, home, "inspect", "--format", "{{range .State.Health.Log}}{{.ExitCode}}{{end}}", ctr))
	if out := strings.TrimSpace(r.out); !strings.HasSuffix(out, "0") || !strings.Contains(out, "1") {
		t.Fatalf("health log exit codes: %q", out)
	}
	r = mustOK(t, "events", docker(t, home, "events", "--since", since, "--until", fmt.Sprint(time.Now().Unix()+1),
		"--filter", "container="+ctr, "--format", "{{.Action}}"))
	if !strings.Contains(r.out, "health_status: unhealthy\n") || !strings.Contains(r.out, "health_status: healthy\n") {
		t.Fatalf("health events: %q", r.out)
	}
}

// waitInspect polls docker inspect --format format on ctr until it prints
// want (60 s at most).
func waitInspect(t *testing.T, home, ctr, format, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := docker(t, home, "inspect", "--format", format, ctr)
		if strings.TrimSpace(r.out) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker inspect %s: %q (%s), want %q", ctr, r.out, r.err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dockerPTY runs the real docker CLI under a pseudo-terminal.
func dockerPTY(t *testing.T, home string, args ...string) *ptySession {
	t.Helper()
	bin := testenv.RequireCommand(t, "docker", "the docker CLI (part of this machine's image)")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+home+"/berth.sock", "DOCKER_CONFIG="+home+"/docker-config", "TERM=xterm")
	return runPTY(t, cmd, 24, 80)
}

// TestDockerCLIContainers drives Berth with the real docker CLI: run --rm
// (exit code), run -d --name, ps, logs, exec -it, inspect, stop, wait, rm,
// and an interactive run --rm -it.
func TestDockerCLIContainers(t *testing.T) {
	home, ref := imageFixture(t)
	r := docker(t, home, "run", "--rm", ref, "sh", "-c", "echo hi from docker; exit 4")
	if r.code != 4 || r.out != "hi from docker\n" {
		t.Fatalf("docker run --rm: %+v", r)
	}
	since := fmt.Sprint(time.Now().Unix())
	r = mustOK(t, "docker run -d", docker(t, home, "run", "-d", "--name", "svc", "--label", "com.example=1",
		"--health-cmd", "test -f /tmp/healthy", "--health-interval", "1s", "--health-retries", "2", ref,
		"sh", "-c", "trap '' TERM; echo started; while true; do sleep 1; done"))
	id := strings.TrimSpace(r.out)
	r = mustOK(t, "docker ps", docker(t, home, "ps", "--filter", "label=com.example=1", "--format", "{{.ID}} {{.Names}} {{.Status}}"))
	if !strings.HasPrefix(r.out, id[:12]+" svc Up") {
		t.Fatalf("docker ps: %q", r.out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = mustOK(t, "docker logs", docker(t, home, "logs", "svc"))
		if r.out == "started\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker logs: %q", r.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r = mustOK(t, "docker inspect", docker(t, home, "inspect", "--format", "{{.State.Status}} {{.NetworkSettings.IPAddress}} {{index .Config.Labels \"com.example\"}}", "svc"))
	if strings.TrimSpace(r.out) != "running 192.168.127.2 1" {
		t.Fatalf("docker inspect: %q", r.out)
	}
	t.Run("cp", func(t *testing.T) { testCopy(t, home, "svc") })
	t.Run("health", func(t *testing.T) { testHealth(t, home, "svc", since) })
	s := dockerPTY(t, home, "exec", "-it", "svc", "sh")
	at := s.expect(0, "# ")
	s.send("echo $((6*7))\n")
	s.expect(at, "42")
	s.send("exit 3\n")
	if code := s.wait(); code != 3 {
		t.Fatalf("docker exec -it exit code %d:\n%s", code, s.output())
	}
	mustOK(t, "docker stop", docker(t, home, "stop", "-t", "1", "svc"))
	r = mustOK(t, "docker wait", docker(t, home, "wait", "svc"))
	if strings.TrimSpace(r.out) != "137" {
		t.Fatalf("docker wait after stopping a process that ignores TERM: %q, want 137 (killed)", r.out)
	}
	mustOK(t, "docker rm", docker(t, home, "rm", "svc"))
	r = docker(t, home, "inspect", "svc")
	if r.code == 0 || !strings.Contains(r.err, "No such") {
		t.Fatalf("inspect after rm: %+v", r)
	}
	s = dockerPTY(t, home, "run", "--rm", "-it", ref, "sh")
	at = s.expect(0, "# ")
	s.send("echo $((7*8))\n")
	s.expect(at, "56")
	s.send("exit 9\n")
	if code := s.wait(); code != 9 {
		t.Fatalf("docker run -it exit code %d:\n%s", code, s.output())
	}
	r = mustOK(t, "docker ps -a", docker(t, home, "ps", "-a", "-q"))
	if strings.TrimSpace(r.out) != "" {
		t.Fatalf("containers left: %q", r.out)
	}
}

// TestRunFlagsAndEvents: the run flags users reach for take effect in the
// VM (user, workdir, hostname, env and env-file, entrypoint, cpus,
// memory, read-only root), and the engine's events stream create, start,
// die and destroy with the container's labels.
func TestRunFlagsAndEvents(t *testing.T) {
	home, ref := imageFixture(t)
	since := fmt.Sprint(time.Now().Unix())
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# comment\nFROMFILE=yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The last line: the folder-sharing and overlay modules guestinit
	// loads after its agent serves arrive shortly after the start.
	script := `id -u; pwd; hostname; echo "$X $FROMFILE"; grep -c ^processor /proc/cpuinfo; grep MemTotal /proc/meminfo; touch /probe 2>/dev/null || echo read-only; ` +
		`for i in $(seq 100); do grep -q '^overlay ' /proc/modules && grep -q '^9p ' /proc/modules && break; sleep 0.1; done; grep -c '^9p \|^overlay ' /proc/modules`
	r := mustOK(t, "run", berth(t, home, "run", "--rm", "-u", "berth", "-w", "/tmp", "--hostname", "box1", "-e", "X=1", "--env-file", envFile,
		"--cpus", "1", "-m", "256m", "--read-only", "-l", "suite=flags", "--entrypoint", "sh", ref, "-c", script))
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 8 {
		t.Fatalf("output: %q", r.out)
	}
	if lines[7] != "2" {
		t.Errorf("late modules (9p, overlay) not loaded: %q", lines[7])
	}
	want := []string{"1000", "/tmp", "box1", "1 yes", "1"}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d = %q, want %q (all: %q)", i, lines[i], w, lines)
		}
	}
	var kb int
	fmt.Sscanf(strings.TrimPrefix(lines[5], "MemTotal:"), "%d", &kb)
	if kb < 150<<10 || kb > 256<<10 {
		t.Errorf("MemTotal %d kB, want a little under 256 MiB", kb)
	}
	if lines[6] != "read-only" {
		t.Errorf("--read-only: %q", lines[6])
	}
	// The events of that run, with its label.
	r = mustOK(t, "docker events", docker(t, home, "events", "--since", since, "--until", fmt.Sprint(time.Now().Unix()+1),
		"--filter", "label=suite=flags", "--format", "{{.Type}} {{.Action}}"))
	got := strings.Fields(strings.ReplaceAll(r.out, "\n", " "))
	var actions []string
	for i := 0; i+1 < len(got); i += 2 {
		if got[i] == "container" {
			actions = append(actions, got[i+1])
		}
	}
	if strings.Join(actions, ",") != "create,start,die,destroy" {
		t.Fatalf("events: %q", r.out)
	}
}

// TestAttachAndRestart: `berth attach` joins a running tty container's
// shell and takes its exit code; `berth restart` boots it again.
func TestAttachAndRestart(t *testing.T) {
	home, ref := imageFixture(t)
	mustOK(t, "run -d -t -i", berth(t, home, "run", "-d", "-t", "-i", "--name", "shell", ref, "sh"))
	s := startPTY(t, home, 24, 80, "attach", "shell")
	s.send("echo $((3*4))\n")
	s.expect(0, "12")
	s.send("exit 2\n")
	if code := s.wait(); code != 2 {
		t.Fatalf("attach exit code %d:\n%s", code, s.output())
	}
	mustOK(t, "restart", berth(t, home, "restart", "shell"))
	r := mustOK(t, "ps", berth(t, home, "ps", "--filter", "name=shell", "--filter", "status=running", "-q"))
	if strings.TrimSpace(r.out) == "" {
		t.Fatalf("not running after restart")
	}
	mustOK(t, "rm -f", berth(t, home, "rm", "-f", "shell"))
}

// TestNoKernelIsAClearError: with no usable guest kernel, run fails at
// once saying how to set one, and the container is kept (exited, with the
// reason) rather than lost.
func TestNoKernelIsAClearError(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "nokernel", testenv.BusyboxImage(t, nil))
	home := shortHome(t)
	startDaemon(t, home, "BERTH_KERNEL=/nonexistent/vmlinuz")
	r := berth(t, home, "run", "--name", "nok", ref, "true")
	if r.code != 125 || !strings.Contains(r.err, "no guest kernel") || !strings.Contains(r.err, "berth system kernel set") {
		t.Fatalf("run without a kernel: %+v", r)
	}
	r = mustOK(t, "ps -a", berth(t, home, "ps", "-a"))
	if !strings.Contains(r.out, "nok") || !strings.Contains(r.out, "Exited") {
		t.Fatalf("container lost:\n%s", r.out)
	}
}
