package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/assets/web"
	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/engine/terminal"
	"github.com/berthvm/berth/internal/testenv"
	"github.com/coder/websocket"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestTerminal drives terminal sessions over a real WebSocket against a
// real container in one QEMU micro-VM, shared by the subtests: the daemon
// runs in-process so the test can read a session's flow-control counters.
func TestTerminal(t *testing.T) {
	e := startTermEngine(t)
	d, dir, cl, ctx := e.d, e.dir, e.cl, context.Background()
	open := func(t *testing.T) (types.Terminal, string) {
		t.Helper()
		tm, err := cl.OpenTerminal(ctx, "term", types.TerminalRequest{})
		if err != nil {
			t.Fatal(err)
		}
		base, tok, ok := strings.Cut(tm.URL, "/terminal/#token=")
		if !ok || !strings.HasPrefix(base, "http://127.0.0.1:") || len(tok) < 32 {
			t.Fatalf("terminal URL %q: want http://127.0.0.1:PORT/terminal/#token=TOKEN", tm.URL)
		}
		return tm, tok
	}
	base := d.WebUI().URL()
	origin := base

	t.Run("echo, resize, exit and reconnect", func(t *testing.T) {
		tm, tok := open(t)
		p := dialPage(t, base, tok, origin)
		hello := p.control()
		if hello["type"] != "hello" || hello["session"] != tm.ID {
			t.Fatalf("first message %v, want hello of session %s", hello, tm.ID)
		}
		if c := hello["container"].(map[string]any); c["name"] != "term" || c["state"] != "running" {
			t.Errorf("hello container %v", c)
		}
		p.resize(24, 80)
		p.expect("# ")
		// The marker is split in the command so its echo never matches.
		p.send("echo $((6*7)) D\"\"ONE\r")
		p.expect("42 DONE\r\n")
		p.resize(33, 111)
		deadline := time.Now().Add(30 * time.Second)
		for {
			p.send("stty size; echo S\"\"IZE\r")
			got := p.expect("SIZE\r\n")
			if strings.Contains(got, "33 111") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stty size never showed 33 111:\n%s", got)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// No bash in busybox: the default shell is its sh.
		p.send("readlink /proc/$$/exe; echo E\"\"XE\r")
		if got := p.expect("EXE\r\n"); !strings.Contains(got, "/bin/busybox") {
			t.Errorf("the default shell is not busybox's sh:\n%s", got)
		}
		p.send("exit 3\r")
		exit := p.control()
		if exit["type"] != "exit" || exit["code"] != float64(3) {
			t.Fatalf("got %v, want exit with code 3", exit)
		}
		tok2, _ := exit["reconnect"].(string)
		if len(tok2) < 32 {
			t.Fatalf("exit %v has no reconnect token", exit)
		}
		p2 := dialPage(t, base, tok2, origin)
		if m := p2.control(); m["type"] != "hello" {
			t.Fatalf("reconnected: %v, want hello", m)
		}
		p2.resize(24, 80)
		p2.send("echo again-$((1+1))\r")
		p2.expect("again-2\r\n")
		p2.close()
		if code := dialStatus(t, base, tok2, origin); code != http.StatusForbidden {
			t.Errorf("reused reconnect token: %d, want 403", code)
		}
	})

	t.Run("bad tokens and origins", func(t *testing.T) {
		before := map[string]bool{}
		for _, s := range d.Terminals().Sessions() {
			before[s.ID()] = true
		}
		for _, bad := range []string{"", "nope", strings.Repeat("ab", 32)} {
			if code := dialStatus(t, base, bad, origin); code != http.StatusForbidden {
				t.Errorf("token %q: %d, want 403", bad, code)
			}
		}
		_, tok := open(t)
		if code := dialStatus(t, base, tok, "http://evil.example"); code != http.StatusForbidden {
			t.Errorf("foreign Origin: %d, want 403", code)
		}
		for _, s := range d.Terminals().Sessions() {
			if !before[s.ID()] {
				t.Errorf("session %s started by a refused request", s.ID())
			}
		}
		req, _ := http.NewRequest("GET", base+"/terminal/", nil)
		req.Host = "evil.example:" + strings.TrimPrefix(base, "http://127.0.0.1:")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("foreign Host: %d, want 421", resp.StatusCode)
		}
	})

	t.Run("seq 1 200000 arrives complete and in order", func(t *testing.T) {
		_, tok := open(t)
		p := dialPage(t, base, tok, origin)
		p.control()
		p.resize(24, 80)
		p.expect("# ")
		p.send("seq 1 200000; echo S\"\"EQ-DONE\r")
		got := p.expect("SEQ-DONE\r\n")
		var nums []int
		for _, l := range strings.Split(got, "\r\n") {
			if n, err := strconv.Atoi(l); err == nil {
				nums = append(nums, n)
			}
		}
		if len(nums) != 200000 {
			t.Fatalf("got %d numbers, want 200000", len(nums))
		}
		for i, n := range nums {
			if n != i+1 {
				t.Fatalf("number %d is %d: out of order or lost", i+1, n)
			}
		}
		s, _ := d.Terminals().Session(p.session)
		st := s.Stats()
		t.Logf("seq: %+v", st)
		if st.PeakUnacked > terminal.HighWater+terminal.BatchBytes {
			t.Errorf("peak unacked %d, more than %d", st.PeakUnacked, terminal.HighWater+terminal.BatchBytes)
		}
		p.close()
	})

	t.Run("paused acks bound memory; closing kills the shell", func(t *testing.T) {
		tm, tok := open(t)
		p := dialPage(t, base, tok, origin)
		p.control()
		p.resize(24, 80)
		p.expect("# ")
		p.send("echo pid=$$ P\"\"ID\r")
		got := p.expect("PID\r\n")
		var pid int
		if i := strings.LastIndex(got, "pid="); i < 0 {
			t.Fatalf("no pid in %q", got)
		} else if _, err := fmt.Sscanf(got[i:], "pid=%d", &pid); err != nil {
			t.Fatalf("no pid in %q: %v", got, err)
		}
		s, ok := d.Terminals().Session(tm.ID)
		if !ok {
			t.Fatal("the session is not listed")
		}
		// The page keeps reading but stops acknowledging.
		p.stopAcks()
		p.send("seq 1 1000000000\r")
		go p.drain()
		last := waitOutputPaused(t, s)
		t.Logf("paused: %+v", last)
		if last.PeakUnacked > terminal.HighWater+terminal.BatchBytes {
			t.Errorf("peak unacked %d, more than high water + a batch (%d)", last.PeakUnacked, terminal.HighWater+terminal.BatchBytes)
		}
		// The guest is still producing (seq is blocked on its pty, not
		// done): acknowledging resumes it.
		p.ackAll(last.Unacked)
		deadline := time.Now().Add(30 * time.Second)
		for s.Stats().Sent == last.Sent {
			if time.Now().After(deadline) {
				t.Fatal("acks did not resume the output")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if st := s.Stats(); st.PeakUnacked > terminal.HighWater+terminal.BatchBytes {
			t.Errorf("after resuming: peak unacked %d", st.PeakUnacked)
		}
		execID := s.ExecID()
		p.close()
		// The shell is gone: its exec ended and its pid is free.
		deadline = time.Now().Add(30 * time.Second)
		for {
			r := berth(t, dir, "exec", "term", "sh", "-c", fmt.Sprintf("test -d /proc/%d", pid))
			if r.code == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the shell (pid %d) still runs after the socket closed: %+v", pid, r)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if e, err := d.Engine.Containers().GetExec(execID); err == nil && e.State().Running {
			t.Errorf("exec %s still running", execID)
		}
	})

	t.Run("berth shell", func(t *testing.T) {
		r := mustOK(t, "shell --web", berth(t, dir, "shell", "term", "--web"))
		url := strings.TrimSpace(r.out)
		base2, tok, ok := strings.Cut(url, "/terminal/#token=")
		if !ok || base2 != base {
			t.Fatalf("shell --web printed %q, want %s/terminal/#token=TOKEN", r.out, base)
		}
		resp, err := http.Get(base2 + "/terminal/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && !(resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), web.ErrNotBuilt.Error())) {
			t.Errorf("GET the page: %d %s", resp.StatusCode, body)
		}
		p := dialPage(t, base2, tok, origin)
		if m := p.control(); m["type"] != "hello" {
			t.Fatalf("got %v, want hello", m)
		}
		p.resize(24, 80)
		p.send("echo web-$((2*3))\r")
		p.expect("web-6\r\n")
		p.close()

		// In this terminal: exec -t -i of the same default shell.
		cmd := exec.Command(berthBin, "shell", "term")
		cmd.Env = append(os.Environ(), "BERTH_HOME="+dir)
		cmd.Stdin = strings.NewReader("echo in-$((3*3))\nexit 5\n")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 5 || !strings.Contains(string(out), "in-9") {
			t.Errorf("berth shell term: %v, output %q; want exit 5 and in-9", err, out)
		}
		r = berth(t, dir, "shell", "term", "--", "sh", "-c", "echo cmd-$((4*4)); exit 6")
		if r.code != 6 || !strings.Contains(r.out, "cmd-16") {
			t.Errorf("berth shell term -- CMD: %+v", r)
		}
	})

	t.Run("browser", func(t *testing.T) {
		testBrowser(t, e)
	})

	t.Run("container stopped mid-session", func(t *testing.T) {
		_, tok := open(t)
		p := dialPage(t, base, tok, origin)
		p.control()
		p.resize(24, 80)
		p.expect("# ")
		mustOK(t, "stop", berth(t, dir, "stop", "-t", "1", "term"))
		m := p.control()
		if m["type"] != "error" || m["reason"] != terminal.ReasonNotRunning {
			t.Fatalf("got %v, want error container-not-running", m)
		}
		if msg, _ := m["message"].(string); !strings.Contains(msg, "term") {
			t.Errorf("message %q does not name the container", msg)
		}
		p.close()
		if _, err := cl.OpenTerminal(ctx, "term", types.TerminalRequest{}); err == nil || !strings.Contains(err.Error(), "not running") {
			t.Errorf("open on a stopped container: %v, want not running", err)
		}
	})
}

// termEngine is an in-process daemon with one running busybox container,
// "term", in a QEMU micro-VM; the daemon runs in-process so tests can read
// a session's flow-control counters.
type termEngine struct {
	d   *daemon.Daemon
	h   home.Home
	dir string // BERTH_HOME
	cl  *client.Client
}

// startTermEngine starts the daemon and the container; both end with tb.
func startTermEngine(tb testing.TB) *termEngine {
	tb.Helper()
	img := testenv.BusyboxImage(tb, nil)
	tb.Setenv(launcher.GuestinitEnv, filepath.Join(filepath.Dir(berthBin), "guestinit-linux-"+runtime.GOARCH))
	dir := shortHome(tb)
	h, err := home.Resolve(dir)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Config{Home: h, LogOutput: io.Discard})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := d.Shutdown(sctx); err != nil {
			tb.Errorf("daemon shutdown: %v", err)
		}
	})
	var tar bytes.Buffer
	if err := tarball.Write(name.MustParseReference("term/busybox:1"), img, &tar); err != nil {
		tb.Fatal(err)
	}
	if _, err := d.Engine.Images().Import(ctx, &tar); err != nil {
		tb.Fatal(err)
	}
	mustOK(tb, "run -d", berth(tb, dir, "run", "-d", "--name", "term", "term/busybox:1", "sleep", "1000000"))
	cl, err := client.New(h.Socket())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cl.Close() })
	return &termEngine{d: d, h: h, dir: dir, cl: cl}
}

// page is a test's terminal page: a real WebSocket client.
type page struct {
	t       testing.TB
	c       *websocket.Conn
	ctx     context.Context
	cancel  context.CancelFunc
	session string
	noAcks  bool
	out     []byte
	from    int // output before this is done with
}

func dialPage(t testing.TB, base, token, origin string) *page {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	c, _, err := websocket.Dial(ctx, wsURL(base, token), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
	if err != nil {
		cancel()
		t.Fatalf("dial the terminal: %v", err)
	}
	c.SetReadLimit(1 << 20)
	p := &page{t: t, c: c, ctx: ctx, cancel: cancel}
	t.Cleanup(p.close)
	return p
}

func wsURL(base, token string) string {
	return strings.Replace(base, "http://", "ws://", 1) + "/terminal/ws?token=" + token
}

// dialStatus is the HTTP status a WebSocket dial gets.
func dialStatus(t *testing.T, base, token, origin string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(base, token), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
	if err == nil {
		c.CloseNow()
		return resp.StatusCode
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

func (p *page) close() {
	p.c.Close(websocket.StatusNormalClosure, "")
	p.cancel()
}

func (p *page) write(typ websocket.MessageType, b []byte) {
	p.t.Helper()
	if err := p.c.Write(p.ctx, typ, b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *page) send(s string) { p.write(websocket.MessageBinary, []byte(s)) }

func (p *page) resize(rows, cols int) {
	p.write(websocket.MessageText, fmt.Appendf(nil, `{"type":"resize","rows":%d,"cols":%d}`, rows, cols))
}

func (p *page) ackAll(n int64) {
	p.write(websocket.MessageText, fmt.Appendf(nil, `{"type":"ack","bytes":%d}`, n))
}

func (p *page) stopAcks() { p.noAcks = true }

// read returns the next message; output is kept and acknowledged (unless
// acks are stopped).
func (p *page) read() (websocket.MessageType, []byte) {
	p.t.Helper()
	typ, b, err := p.c.Read(p.ctx)
	if err != nil {
		p.t.Fatalf("read: %v; output so far:\n%s", err, p.out)
	}
	if typ == websocket.MessageBinary {
		p.out = append(p.out, b...)
		if !p.noAcks {
			p.ackAll(int64(len(b)))
		}
	}
	return typ, b
}

// drain reads (and drops) until the socket closes, without acks.
func (p *page) drain() {
	for {
		if _, _, err := p.c.Read(p.ctx); err != nil {
			return
		}
	}
}

// control reads until the next text message and decodes it.
func (p *page) control() map[string]any {
	p.t.Helper()
	for {
		typ, b := p.read()
		if typ != websocket.MessageText {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			p.t.Fatalf("text message %q: %v", b, err)
		}
		if m["type"] == "hello" {
			p.session, _ = m["session"].(string)
		}
		return m
	}
}

func (p *page) since() string { return string(p.out[p.from:]) }

// expect reads output until what came since the mark contains want,
// moves the mark past it, and returns the output up to it.
func (p *page) expect(want string) string {
	p.t.Helper()
	for {
		if i := strings.Index(p.since(), want); i >= 0 {
			got := p.since()[:i+len(want)]
			p.from += i + len(want)
			return got
		}
		if typ, b := p.read(); typ == websocket.MessageText {
			p.t.Fatalf("waiting for %q, got %s; output:\n%s", want, b, p.since())
		}
	}
}
