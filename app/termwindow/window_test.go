package termwindow

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/terminal"
)

// fakeBackend is a fake terminal.Backend: one running container whose
// execs are a Go echo shell, no VM. It is a fake because these tests are
// about the window's bridge, which needs a macOS web view to run for
// real; engine/terminal's own tests and app/terminal_e2e_test.go cover
// sessions against a real guest.
type fakeBackend struct {
	mu    sync.Mutex
	info  terminal.ContainerInfo
	execs map[string]*fakeShell
	n     int
	// started receives each exec once it runs.
	started chan *fakeShell
}

type fakeShell struct {
	id      string
	cfg     container.ExecConfig
	signals chan string
	ended   chan int // its exit code
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		info:  terminal.ContainerInfo{ID: "0123456789abcdef", Name: "web", Image: "debian", State: "running"},
		execs: map[string]*fakeShell{}, started: make(chan *fakeShell, 16),
	}
}

func (b *fakeBackend) Container(ref string) (terminal.ContainerInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ref != b.info.ID && ref != b.info.Name {
		return terminal.ContainerInfo{}, errdefs.NotFound(fmt.Errorf("no such container: %s", ref))
	}
	return b.info, nil
}

func (b *fakeBackend) CreateExec(ctx context.Context, ref string, cfg container.ExecConfig) (string, error) {
	if _, err := b.Container(ref); err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	s := &fakeShell{id: fmt.Sprintf("exec%d", b.n), cfg: cfg, signals: make(chan string, 4), ended: make(chan int, 1)}
	b.execs[s.id] = s
	return s.id, nil
}

// StartExec runs the echo shell: each input line comes back as "> LINE";
// "exit N" exits N; "big N" writes N bytes of a numbered pattern; a
// signal ends it with 129.
func (b *fakeBackend) StartExec(ctx context.Context, id string, stdio agent.Stdio) (int, error) {
	b.mu.Lock()
	s := b.execs[id]
	b.mu.Unlock()
	b.started <- s
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdio.Stdin)
		sc.Split(scanTTYLines)
		for sc.Scan() {
			if sc.Text() != "" {
				lines <- sc.Text()
			}
		}
	}()
	code := func() int {
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					// A pty's input never ends: wait for a signal.
					lines = nil
					continue
				}
				var n int
				if _, err := fmt.Sscanf(l, "exit %d", &n); err == nil {
					return n
				}
				if _, err := fmt.Sscanf(l, "big %d", &n); err == nil {
					if _, err := stdio.Stdout.Write(pattern(n)); err != nil {
						return 1
					}
					continue
				}
				if _, err := io.WriteString(stdio.Stdout, "> "+l+"\r\n"); err != nil {
					return 1
				}
			case <-s.signals:
				return 129
			case <-ctx.Done():
				return 137
			}
		}
	}()
	s.ended <- code
	return code, nil
}

func (b *fakeBackend) ResizeExec(ctx context.Context, id string, rows, cols uint32) error { return nil }

func (b *fakeBackend) SignalExec(ctx context.Context, id string, sig string) error {
	b.mu.Lock()
	s := b.execs[id]
	b.mu.Unlock()
	select {
	case s.signals <- sig:
	default:
	}
	return nil
}

// WaitStopped blocks until ctx ends: the fake's container never stops.
func (b *fakeBackend) WaitStopped(ctx context.Context, ref string) error {
	<-ctx.Done()
	return ctx.Err()
}

// scanTTYLines splits input into lines ended by CR (what a terminal's
// Enter sends) or LF.
func scanTTYLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// pattern is n bytes of "0 1 2 …": any byte lost, doubled or out of
// order shows.
func pattern(n int) []byte {
	b := make([]byte, 0, n+16)
	for i := 0; len(b) < n; i++ {
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ' ')
	}
	return b[:n]
}

// pageSim plays the terminal page (assets/web/src/main.ts) on a
// recordingPage: the test reads the engine's messages and answers the
// way the page does.
type pageSim struct {
	t   *testing.T
	rec *recordingPage
	w   *Window
	out []byte
}

// next returns the next text message, collecting (and, like the page,
// acknowledging) output before it.
func (p *pageSim) next() map[string]any {
	p.t.Helper()
	for {
		select {
		case m := <-p.rec.msgs:
			switch m.T {
			case KindBinary:
				b, err := base64.StdEncoding.DecodeString(m.D)
				if err != nil {
					p.t.Fatalf("binary message %q: %v", m.D, err)
				}
				p.out = append(p.out, b...)
				p.w.Receive(KindText, fmt.Sprintf(`{"type":"ack","bytes":%d}`, len(b)))
			case KindText:
				var v map[string]any
				if err := json.Unmarshal([]byte(m.D), &v); err != nil {
					p.t.Fatalf("text message %q: %v", m.D, err)
				}
				return v
			default:
				p.t.Fatalf("a message of kind %q to the page", m.T)
			}
		case <-time.After(10 * time.Second):
			p.t.Fatalf("no text message within 10s; output so far %q", p.out)
		}
	}
}

// hello reads the hello and answers with a resize, as the page does.
func (p *pageSim) hello(cols, rows int) map[string]any {
	p.t.Helper()
	h := p.next()
	if h["type"] != "hello" {
		p.t.Fatalf("first message %v, want hello", h)
	}
	p.w.Receive(KindText, fmt.Sprintf(`{"type":"resize","cols":%d,"rows":%d}`, cols, rows))
	return h
}

func (p *pageSim) input(s string) {
	p.w.Receive(KindBinary, base64.StdEncoding.EncodeToString([]byte(s)))
}

// outputUntil collects output until it has want.
func (p *pageSim) outputUntil(want string) {
	p.t.Helper()
	deadline := time.After(10 * time.Second)
	for !bytes.Contains(p.out, []byte(want)) {
		select {
		case m := <-p.rec.msgs:
			if m.T != KindBinary {
				p.t.Fatalf("waiting for output %q, got %+v", want, m)
			}
			b, _ := base64.StdEncoding.DecodeString(m.D)
			p.out = append(p.out, b...)
			p.w.Receive(KindText, fmt.Sprintf(`{"type":"ack","bytes":%d}`, len(b)))
		case <-deadline:
			p.t.Fatalf("output %q never came; got %q", want, p.out)
		}
	}
}

type titles struct {
	mu  sync.Mutex
	all []string
}

func (ts *titles) set(s string) { ts.mu.Lock(); ts.all = append(ts.all, s); ts.mu.Unlock() }
func (ts *titles) get() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.all...)
}

// openWindow issues a ticket for the fake container and makes a window
// of it (not yet loaded).
func openWindow(t *testing.T, opts terminal.Options) (*terminal.Manager, *fakeBackend, *pageSim, *titles) {
	t.Helper()
	b := newFakeBackend()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr := terminal.NewManager(terminal.Config{Backend: b, Log: log})
	tk, err := mgr.Issue(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := &titles{}
	rec := newRecordingPage()
	w := New(context.Background(), Config{Manager: mgr, Page: rec, Token: tk.Token, SetTitle: ts.set, Log: log})
	t.Cleanup(func() {
		w.Close()
		w.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := mgr.Shutdown(ctx); err != nil {
			t.Errorf("sessions left behind: %v", err)
		}
	})
	return mgr, b, &pageSim{t: t, rec: rec, w: w}, ts
}

// TestWindowSession runs a window's whole life through a real
// terminal.Manager: the session starts once the page loaded, the title
// follows hello, input and output cross the bridge, the shell's exit
// reaches the page with a Reconnect token, open starts a new session with
// it, and closing the window hangs that shell up.
func TestWindowSession(t *testing.T) {
	mgr, b, p, ts := openWindow(t, terminal.Options{Container: "web"})
	if got := p.w.Title(); got != DefaultTitle {
		t.Fatalf("title before hello %q, want %q", got, DefaultTitle)
	}
	select {
	case m := <-p.rec.msgs:
		t.Fatalf("the page got %+v before it loaded", m)
	case <-time.After(50 * time.Millisecond):
	}

	p.w.Loaded()
	h := p.hello(132, 43)
	if c, _ := h["container"].(map[string]any); c["name"] != "web" || c["state"] != "running" {
		t.Fatalf("hello %v", h)
	}
	if got := p.w.Title(); got != "web — running" {
		t.Fatalf("title after hello %q, want %q", got, "web — running")
	}
	if got := ts.get(); len(got) != 1 || got[0] != "web — running" {
		t.Fatalf("SetTitle calls %q, want one with the hello's title", got)
	}
	sh := <-b.started
	if sh.cfg.ConsoleSize != [2]uint{43, 132} || !sh.cfg.Tty {
		t.Fatalf("exec %+v, want a tty of 43 rows, 132 columns (the page's resize)", sh.cfg)
	}

	p.input("echo héllo\n")
	p.outputUntil("> echo héllo\r\n")

	// Enough output to pass the high-water mark: it only arrives whole if
	// the page's acks cross the bridge.
	const big = terminal.HighWater + terminal.HighWater/2
	p.out = nil
	p.input(fmt.Sprintf("big %d\n", big))
	want := pattern(big)
	p.outputUntil(string(want[big-14:]))
	if !bytes.Equal(p.out, want) {
		t.Fatalf("big output: got %d bytes, not the %d sent in order", len(p.out), big)
	}

	p.input("exit 3\n")
	ex := p.next()
	if ex["type"] != "exit" || ex["code"] != float64(3) {
		t.Fatalf("after exit 3: %v", ex)
	}
	tok, _ := ex["reconnect"].(string)
	if tok == "" {
		t.Fatalf("exit %v has no reconnect token", ex)
	}
	if code := <-sh.ended; code != 3 {
		t.Fatalf("first shell ended %d", code)
	}

	// Reconnect: the page posts open with the token.
	p.w.Receive(KindOpen, tok)
	p.hello(80, 24)
	sh2 := <-b.started
	p.input("again\n")
	p.outputUntil("> again\r\n")
	if _, err := mgr.Redeem(tok); err == nil {
		t.Fatal("the reconnect token opened a second session")
	}

	p.w.Close()
	select {
	case code := <-sh2.ended:
		if code != 129 {
			t.Fatalf("the shell of a closed window ended %d, want 129 (SIGHUP)", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the window did not end its shell")
	}
	p.w.Wait()
	if n := len(mgr.Sessions()); n != 0 {
		t.Fatalf("%d sessions after the window closed", n)
	}
	// A closed window ignores the page.
	p.w.Receive(KindOpen, "x")
	p.w.Loaded()
	select {
	case m := <-p.rec.msgs:
		t.Fatalf("a closed window sent %+v", m)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestWindowBadTokens: a used or wrong token opens nothing and the page
// is told why, as the protocol's error (its banner), without Reconnect.
func TestWindowBadTokens(t *testing.T) {
	mgr, _, p, _ := openWindow(t, terminal.Options{Container: "web"})
	p.w.Receive(KindOpen, "0000")
	e := p.next()
	if e["type"] != "error" || e["reason"] != terminal.ReasonInternal || e["message"] != terminal.ErrBadToken.Error() || e["reconnect"] != nil {
		t.Fatalf("open with a wrong token: %v", e)
	}
	if n := len(mgr.Sessions()); n != 0 {
		t.Fatalf("%d sessions after a wrong token", n)
	}

	// A window whose token was used elsewhere first.
	tk, err := mgr.Issue(terminal.Options{Container: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.Redeem(tk.Token); err != nil {
		t.Fatal(err)
	}
	rec := newRecordingPage()
	w := New(context.Background(), Config{Manager: mgr, Page: rec, Token: tk.Token})
	defer func() { w.Close(); w.Wait() }()
	w.Loaded()
	q := &pageSim{t: t, rec: rec, w: w}
	if e := q.next(); e["type"] != "error" || e["message"] != terminal.ErrBadToken.Error() {
		t.Fatalf("a window with a used token: %v", e)
	}
}

// TestWindowInputBeforeSession: messages the page posts with no session
// (before load, after a wrong token) and malformed ones are dropped, not
// a crash; unknown kinds too.
func TestWindowInputBeforeSession(t *testing.T) {
	_, b, p, _ := openWindow(t, terminal.Options{Container: "web"})
	p.input("lost\n")
	p.w.Receive(KindText, `{"type":"resize","cols":10,"rows":5}`)
	p.w.Receive("bogus", "x")
	p.w.Loaded()
	p.hello(100, 30)
	<-b.started
	p.w.Receive(KindBinary, "not base64!")
	p.input("kept\n")
	p.outputUntil("> kept\r\n")
	if bytes.Contains(p.out, []byte("lost")) {
		t.Fatalf("input from before the session reached it: %q", p.out)
	}
}

// TestWindowReload: a second load (the page lost its screen) ends the
// session and starts a new one with the same options.
func TestWindowReload(t *testing.T) {
	mgr, b, p, _ := openWindow(t, terminal.Options{Container: "web", User: "nobody"})
	p.w.Loaded()
	p.hello(80, 24)
	sh := <-b.started
	p.w.Loaded()
	if code := <-sh.ended; code != 129 {
		t.Fatalf("the reloaded page's old shell ended %d, want 129 (SIGHUP)", code)
	}
	p.hello(80, 24)
	sh2 := <-b.started
	if sh2.cfg.User != "nobody" {
		t.Fatalf("the new session's exec %+v, want the window's options (user nobody)", sh2.cfg)
	}
	p.input("new\n")
	p.outputUntil("> new\r\n")
	if n := len(mgr.Sessions()); n != 1 {
		t.Fatalf("%d sessions after a reload, want 1", n)
	}
}

// TestWindowEngineStopping: Shutdown reaches the page as engine-stopping.
func TestWindowEngineStopping(t *testing.T) {
	mgr, b, p, _ := openWindow(t, terminal.Options{Container: "web"})
	p.w.Loaded()
	p.hello(80, 24)
	<-b.started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mgr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if e := p.next(); e["type"] != "error" || e["reason"] != terminal.ReasonStopping {
		t.Fatalf("after Shutdown: %v", e)
	}
	// A Reconnect now is refused the same way.
	p.w.Receive(KindOpen, "whatever")
	if e := p.next(); e["type"] != "error" {
		t.Fatalf("open while stopping: %v", e)
	}
}

func TestTitleFor(t *testing.T) {
	for _, tc := range []struct {
		c    terminal.ContainerInfo
		want string
	}{
		{terminal.ContainerInfo{Name: "web", State: "running"}, "web — running"},
		{terminal.ContainerInfo{ID: "0123456789abcdef", State: "running"}, "0123456789ab — running"},
		{terminal.ContainerInfo{ID: "abc"}, "abc"},
		{terminal.ContainerInfo{}, "container"},
	} {
		if got := TitleFor(tc.c); got != tc.want {
			t.Errorf("TitleFor(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}
