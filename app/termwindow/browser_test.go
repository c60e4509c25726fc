package termwindow

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/terminal"
	"github.com/berthvm/berth/internal/testenv"
)

// chromiumPage is the Page of the terminal page in a real chromium,
// driven by assets/web/test/bridge.e2e.mjs over its stdin and stdout: a
// stand-in for the WKWebView, which needs macOS. The page's posts to the
// "berth" handler go to window.
type chromiumPage struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     io.WriteCloser
	window *Window // set before the page loads

	mu      sync.Mutex
	next    int
	pending map[int]chan driverReply
	errs    []string // the page's errors
	exited  chan struct{}
}

type driverReply struct {
	Kind   string          `json:"kind"`
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
	T      string          `json:"t"`
	D      string          `json:"d"`
	Text   string          `json:"text"`
}

// pageState is the driver's state answer.
type pageState struct {
	Title, State, Transport, Text, BannerText string
	Received, Acked                           int64
	Cols, Rows                                int
	Banner, Reconnect                         bool
}

func startChromium(t *testing.T) *chromiumPage {
	t.Helper()
	webDir, err := filepath.Abs("../../assets/web")
	if err != nil {
		t.Fatal(err)
	}
	node, _ := testenv.BrowserTools(t, webDir)
	p := &chromiumPage{t: t, pending: map[int]chan driverReply{}, exited: make(chan struct{})}
	p.cmd = exec.Command(node, "test/bridge.e2e.mjs")
	p.cmd.Dir = webDir
	p.cmd.Stderr = &testWriter{t: t}
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start the browser driver: %v", err)
	}
	go p.read(out)
	t.Cleanup(func() {
		p.send(map[string]any{"op": "close"})
		p.in.Close()
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("the browser driver: %v", err)
		}
	})
	return p
}

// read handles the driver's output: posts go to the window, in order;
// results to their callers.
func (p *chromiumPage) read(out io.Reader) {
	defer close(p.exited)
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var r driverReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			p.t.Errorf("browser driver said %q: %v", sc.Bytes(), err)
			continue
		}
		switch r.Kind {
		case "post":
			p.window.Receive(r.T, r.D)
		case "result":
			p.mu.Lock()
			ch := p.pending[r.ID]
			delete(p.pending, r.ID)
			p.mu.Unlock()
			if ch != nil {
				ch <- r
			}
		case "page-error":
			p.mu.Lock()
			p.errs = append(p.errs, r.Text)
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	for id, ch := range p.pending {
		ch <- driverReply{ID: id, Error: "the browser driver exited"}
		delete(p.pending, id)
	}
	p.mu.Unlock()
}

// send writes one command and returns where its answer will arrive.
func (p *chromiumPage) send(cmd map[string]any) chan driverReply {
	ch := make(chan driverReply, 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	cmd["id"] = p.next
	p.pending[p.next] = ch
	b, _ := json.Marshal(cmd)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		delete(p.pending, p.next)
		ch <- driverReply{Error: fmt.Sprintf("write to the browser driver: %v", err)}
	}
	return ch
}

// do runs one command and fails the test if it fails.
func (p *chromiumPage) do(op string, args map[string]any) json.RawMessage {
	p.t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	args["op"] = op
	select {
	case r := <-p.send(args):
		if r.Error != "" {
			p.t.Fatalf("browser %s: %s", op, r.Error)
		}
		return r.Result
	case <-time.After(30 * time.Second):
		p.t.Fatalf("browser %s: no answer in 30s", op)
		return nil
	}
}

// EvaluateJavaScript runs script in chromium. The pipe's write may
// wait for the driver to read, briefly; never for the page.
func (p *chromiumPage) EvaluateJavaScript(script string, done func(error)) {
	ch := p.send(map[string]any{"op": "eval", "script": script})
	go func() {
		if r := <-ch; r.Error != "" {
			done(errors.New(r.Error))
			return
		}
		done(nil)
	}()
}

func (p *chromiumPage) state() pageState {
	p.t.Helper()
	var s pageState
	if err := json.Unmarshal(p.do("state", nil), &s); err != nil {
		p.t.Fatal(err)
	}
	return s
}

// waitFor polls the page's state until ok, for 20s; what names the wait.
func (p *chromiumPage) waitFor(what string, ok func(pageState) bool) pageState {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := p.state()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not after 20s; the page: %+v", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *chromiumPage) typeLine(s string) {
	p.t.Helper()
	p.do("type", map[string]any{"text": s})
	p.do("press", map[string]any{"key": "Enter"})
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Logf("browser driver: %s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// schemeStandIn serves what the berth: scheme handler serves, over HTTP:
// chromium cannot be given a WKURLSchemeHandler, so the bundle's answers
// (status, header, body) reach it from Bundle.Serve through this.
func schemeStandIn(b *Bundle) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := b.Serve(Scheme + "://" + Host + r.URL.EscapedPath())
		for k, v := range res.Header() {
			w.Header().Set(k, v)
		}
		w.WriteHeader(res.Status)
		w.Write(res.Body)
	})
}

// TestBridgeInChromium runs the real terminal page (the embedded bundle)
// in a real browser over the bridge, against a real terminal.Manager with
// a fake backend (fakeBackend: no VM is needed to test a transport): the
// page's hello title, its resize, typed input and the shell's output,
// 1.5 MiB of output acknowledged through the bridge, the ended banner
// and Reconnect's open, and closing the window hanging the shell up.
func TestBridgeInChromium(t *testing.T) {
	p := startChromium(t)
	srv := httptest.NewServer(schemeStandIn(NewBundle()))
	defer srv.Close()

	b := newFakeBackend()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr := terminal.NewManager(terminal.Config{Backend: b, Log: log})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := mgr.Shutdown(ctx); err != nil {
			t.Errorf("sessions left behind: %v", err)
		}
	}()
	tk, err := mgr.Issue(terminal.Options{Container: "web"})
	if err != nil {
		t.Fatal(err)
	}
	ts := &titles{}
	w := New(context.Background(), Config{Manager: mgr, Page: p, Token: tk.Token, SetTitle: ts.set, Log: log})
	defer func() { w.Close(); w.Wait() }()
	p.window = w

	var status int
	json.Unmarshal(p.do("goto", map[string]any{"url": srv.URL + "/index.html"}), &status)
	if status != http.StatusOK {
		t.Fatalf("the page loaded with status %d", status)
	}
	w.Loaded() // what the navigation delegate's didFinishNavigation does

	s := p.waitFor("hello titles the page", func(s pageState) bool { return s.State == "open" && s.Title == "web — running" })
	if s.Transport != "bridge" {
		t.Fatalf("the page's transport is %q, want the bridge", s.Transport)
	}
	if got := w.Title(); got != "web — running" {
		t.Fatalf("the window's title %q, the page's %q", got, s.Title)
	}
	sh := <-b.started
	if sh.cfg.ConsoleSize != [2]uint{uint(s.Rows), uint(s.Cols)} {
		t.Fatalf("the pty is %v (rows, cols), the page's terminal %dx%d", sh.cfg.ConsoleSize, s.Rows, s.Cols)
	}

	p.typeLine("hello bridge ✓")
	p.waitFor("typed input's echo", func(s pageState) bool { return strings.Contains(s.Text, "> hello bridge ✓") })

	before := p.state().Received
	const big = terminal.HighWater + terminal.HighWater/2
	p.typeLine(fmt.Sprintf("big %d", big))
	s = p.waitFor("1.5 MiB of output, all acknowledged", func(s pageState) bool {
		return s.Received >= before+big && s.Acked == s.Received
	})
	if s.Received != before+big {
		t.Fatalf("the page received %d bytes, want %d", s.Received-before, big)
	}

	p.typeLine("exit 3")
	s = p.waitFor("the ended banner", func(s pageState) bool { return s.Banner && s.State == "ended" })
	if !strings.Contains(s.BannerText, "code 3") || !s.Reconnect {
		t.Fatalf("the banner says %q (Reconnect shown: %v), want code 3 and Reconnect", s.BannerText, s.Reconnect)
	}
	if code := <-sh.ended; code != 3 {
		t.Fatalf("the shell ended %d", code)
	}

	p.do("click", map[string]any{"selector": "#reconnect"})
	p.waitFor("Reconnect opens a new session", func(s pageState) bool { return s.State == "open" && !s.Banner })
	sh2 := <-b.started
	p.typeLine("again")
	s = p.waitFor("the new shell's echo", func(s pageState) bool { return strings.Contains(s.Text, "> again") })
	// The new session starts below the old one's output, which stays.
	ls := strings.Split(strings.TrimRight(s.Text, "\n"), "\n")
	if len(ls) < 2 || ls[len(ls)-1] != "> again" || !strings.HasSuffix(ls[len(ls)-2], lastWord(pattern(big))) {
		var tails []string
		for _, l := range ls[max(0, len(ls)-3):] {
			tails = append(tails, l[max(0, len(l)-60):])
		}
		t.Fatalf("after Reconnect the terminal's last lines end %q, want the old output's last line, then \"> again\"", tails)
	}

	w.Close()
	select {
	case code := <-sh2.ended:
		if code != 129 {
			t.Fatalf("the closed window's shell ended %d, want 129 (SIGHUP)", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the window did not end its shell")
	}
	w.Wait()
	p.mu.Lock()
	errs := p.errs
	p.mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("the page logged errors: %q", errs)
	}
}

// lastWord is the text after b's last space.
func lastWord(b []byte) string {
	return string(b[strings.LastIndexByte(string(b), ' ')+1:])
}
