package terminal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness runs one session of g in the background.
type harness struct {
	m      *Manager
	g      *fakeGuest
	page   *page
	ticket Ticket
	served chan error
}

func start(t *testing.T, g *fakeGuest, opts Options) *harness {
	t.Helper()
	m := NewManager(Config{Backend: g})
	m.hangupGrace = 200 * time.Millisecond
	return startOn(t, m, g, opts)
}

func startOn(t *testing.T, m *Manager, g *fakeGuest, opts Options) *harness {
	t.Helper()
	if opts.Container == "" {
		opts.Container = "web"
	}
	issued, err := m.Issue(opts)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := m.Redeem(issued.Token)
	if err != nil {
		t.Fatal(err)
	}
	eng, pg := newConnPair()
	h := &harness{m: m, g: g, page: &page{t: t, conn: pg}, ticket: tk, served: make(chan error, 1)}
	go func() { h.served <- m.Serve(context.Background(), eng, tk) }()
	t.Cleanup(func() {
		pg.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return h
}

// hello reads the hello, sends a resize, and returns the started exec.
func (h *harness) hello(rows, cols int) (map[string]any, *fakeExec) {
	h.page.t.Helper()
	hello := h.page.control()
	if hello["type"] != "hello" {
		h.page.t.Fatalf("first message %v, want hello", hello)
	}
	h.page.send(map[string]any{"type": "resize", "rows": rows, "cols": cols})
	select {
	case e := <-h.g.started:
		return hello, e
	case <-time.After(5 * time.Second):
		h.page.t.Fatal("the exec never started")
		return nil, nil
	}
}

func (h *harness) wait() error {
	h.page.t.Helper()
	select {
	case err := <-h.served:
		return err
	case <-time.After(10 * time.Second):
		h.page.t.Fatal("Serve did not return")
		return nil
	}
}

func TestHelloInputOutputExitAndReconnect(t *testing.T) {
	g := newFakeGuest(echoShell)
	h := start(t, g, Options{User: "nobody", WorkDir: "/tmp"})
	hello, e := h.hello(30, 100)
	if hello["session"] != h.ticket.Session {
		t.Errorf("hello session %v, want %s", hello["session"], h.ticket.Session)
	}
	c := hello["container"].(map[string]any)
	if c["id"] != "c0ffee" || c["name"] != "web" || c["image"] != "busybox" || c["state"] != "running" {
		t.Errorf("hello container %v", c)
	}
	if fmt.Sprint(hello["command"]) != fmt.Sprint(DefaultShell()) {
		t.Errorf("hello command %v, want the default shell", hello["command"])
	}
	if e.cfg.User != "nobody" || e.cfg.WorkingDir != "/tmp" || !e.cfg.Tty || e.cfg.ConsoleSize != [2]uint{30, 100} {
		t.Errorf("exec config %+v: want user nobody, workdir /tmp, a tty of 30x100", e.cfg)
	}
	h.page.input("echo hi\n")
	h.page.readOutputUntil("echo hi\r\n")
	h.page.input("exit 3\n")
	exit := h.page.control()
	if exit["type"] != "exit" || exit["code"] != float64(3) {
		t.Fatalf("got %v, want exit with code 3", exit)
	}
	tok, _ := exit["reconnect"].(string)
	if len(tok) < 32 {
		t.Fatalf("reconnect token %q: want ≥128 bits of hex", tok)
	}
	if err := h.wait(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, ok := h.page.next(100 * time.Millisecond); ok {
		t.Error("a message after exit")
	}
	tk, err := h.m.Redeem(tok)
	if err != nil {
		t.Fatalf("redeem the reconnect token: %v", err)
	}
	if tk.Options.Container != "web" || tk.Options.User != "nobody" || tk.Options.WorkDir != "/tmp" || tk.Session == h.ticket.Session {
		t.Errorf("reconnect ticket %+v: want the same options, a new session", tk)
	}
	if _, err := h.m.Redeem(tok); !errors.Is(err, ErrBadToken) {
		t.Errorf("second redeem of the reconnect token: %v, want ErrBadToken", err)
	}
	// The reconnect token opens a working session.
	eng, pg := newConnPair()
	p2 := &page{t: t, conn: pg}
	served := make(chan error, 1)
	go func() { served <- h.m.Serve(context.Background(), eng, tk) }()
	if m := p2.control(); m["type"] != "hello" || m["session"] != tk.Session {
		t.Fatalf("reconnected session's first message %v", m)
	}
	p2.send(map[string]any{"type": "resize", "rows": 24, "cols": 80})
	<-g.started
	p2.input("again\n")
	p2.readOutputUntil("again\r\n")
	p2.input("exit 0\n")
	if m := p2.control(); m["type"] != "exit" || m["code"] != float64(0) {
		t.Fatalf("got %v, want exit 0", m)
	}
	<-served
}

// TestKilledShellInARunningContainer: a shell killed by a signal while
// its container runs on is an exit with its code, after stopWait.
func TestKilledShellInARunningContainer(t *testing.T) {
	g := newFakeGuest(func(ctx context.Context, e *fakeExec) int { return 137 })
	h := start(t, g, Options{})
	h.hello(24, 80)
	began := time.Now()
	if m := h.page.control(); m["type"] != "exit" || m["code"] != float64(137) || m["reconnect"] == nil {
		t.Fatalf("got %v, want exit 137 with reconnect", m)
	}
	if d := time.Since(began); d < stopWait-100*time.Millisecond {
		t.Errorf("exit after %v: it did not wait to see whether the container stops", d)
	}
	h.wait()
}

func TestDefaultShell(t *testing.T) {
	g := newFakeGuest(echoShell)
	h := start(t, g, Options{})
	hello, e := h.hello(24, 80)
	want := fmt.Sprint(DefaultShell())
	if fmt.Sprint(hello["command"]) != want || fmt.Sprint(e.cfg.Cmd) != want {
		t.Errorf("command %v, exec %v: want %s", hello["command"], e.cfg.Cmd, want)
	}
}

func TestGivenCommandIsRun(t *testing.T) {
	g := newFakeGuest(echoShell)
	h := start(t, g, Options{Cmd: []string{"/usr/bin/top", "-b"}})
	hello, e := h.hello(24, 80)
	if fmt.Sprint(hello["command"]) != "[/usr/bin/top -b]" || strings.Join(e.cfg.Cmd, " ") != "/usr/bin/top -b" {
		t.Errorf("command %v, exec %v", hello["command"], e.cfg.Cmd)
	}
}

// TestNoShell: an image without /bin/sh gets no-shell, saying to give a
// command; a given command that is missing is not no-shell.
func TestNoShell(t *testing.T) {
	g := newFakeGuest(echoShell)
	g.hasSh = false
	h := start(t, g, Options{})
	if m := h.page.control(); m["type"] != "hello" {
		t.Fatalf("first message %v, want hello", m)
	}
	h.page.send(map[string]any{"type": "resize", "rows": 24, "cols": 80})
	m := h.page.control()
	if m["type"] != "error" || m["reason"] != ReasonNoShell || m["reconnect"] != nil {
		t.Fatalf("got %v, want error no-shell without reconnect", m)
	}
	if msg, _ := m["message"].(string); !strings.Contains(msg, "berth shell web -- COMMAND") {
		t.Errorf("message %q does not say to give a command", msg)
	}
	h.wait()

	h = start(t, g, Options{Cmd: []string{"/bin/sh", "-l"}})
	h.page.control()
	h.page.send(map[string]any{"type": "resize", "rows": 24, "cols": 80})
	if m := h.page.control(); m["type"] != "error" || m["reason"] != ReasonInternal || m["reconnect"] == nil {
		t.Fatalf("a missing given command: got %v, want error internal with reconnect", m)
	}
	h.wait()
}

func TestResizeIsClamped(t *testing.T) {
	g := newFakeGuest(echoShell)
	h := start(t, g, Options{})
	_, e := h.hello(0, 0)
	if e.cfg.ConsoleSize != [2]uint{1, 1} {
		t.Errorf("0x0 started the pty at %v, want 1x1", e.cfg.ConsoleSize)
	}
	for _, tc := range []struct {
		rows, cols int
		want       [2]uint32
	}{
		{100000, 100000, [2]uint32{1000, 1000}},
		{-5, 120, [2]uint32{1, 120}},
		{50, 1000, [2]uint32{50, 1000}},
		{1001, 0, [2]uint32{1000, 1}},
	} {
		h.page.send(map[string]any{"type": "resize", "rows": tc.rows, "cols": tc.cols})
		deadline := time.Now().Add(5 * time.Second)
		for e.lastResize() != tc.want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := e.lastResize(); got != tc.want {
			t.Errorf("resize %dx%d: the pty got %v, want %v", tc.rows, tc.cols, got, tc.want)
		}
	}
}

// TestBatching: many small writes go out as few messages of at most
// BatchBytes, complete and in order; a lone write goes out after about
// BatchDelay.
func TestBatching(t *testing.T) {
	const writes, size = 2000, 100
	burst := make(chan struct{})
	g := newFakeGuest(func(ctx context.Context, e *fakeExec) int {
		<-burst
		for i := range writes {
			line := fmt.Sprintf("%099d", i) + "\n"
			if _, err := io.WriteString(e.stdout, line); err != nil {
				return 1
			}
		}
		time.Sleep(100 * time.Millisecond)
		io.WriteString(e.stdout, "lone")
		time.Sleep(100 * time.Millisecond)
		return 0
	})
	h := start(t, g, Options{})
	h.hello(24, 80)
	close(burst)
	var out []byte
	msgs := 0
	var loneAt time.Time
	for {
		m, ok := h.page.next(5 * time.Second)
		if !ok {
			t.Fatal("no exit")
		}
		if m.typ == TextMessage {
			if !strings.Contains(string(m.data), `"exit"`) {
				t.Fatalf("got %s, want exit", m.data)
			}
			break
		}
		if len(m.data) > BatchBytes {
			t.Errorf("a binary message of %d bytes, more than %d", len(m.data), BatchBytes)
		}
		if string(m.data) == "lone" {
			loneAt = time.Now()
		}
		msgs++
		out = append(out, m.data...)
		h.page.send(map[string]any{"type": "ack", "bytes": len(m.data)})
	}
	var want bytes.Buffer
	for i := range writes {
		fmt.Fprintf(&want, "%099d\n", i)
	}
	want.WriteString("lone")
	if !bytes.Equal(out, want.Bytes()) {
		t.Fatalf("output of %d bytes differs from the %d written", len(out), want.Len())
	}
	// 200 KB in 100-byte writes: a handful of messages, not 2000.
	if maxMsgs := 2*writes*size/BatchBytes + 10; msgs > maxMsgs {
		t.Errorf("%d messages for %d writes: not batched (want ≤ %d)", msgs, writes, maxMsgs)
	}
	if loneAt.IsZero() {
		t.Error("the lone write did not come as its own message")
	}
}

// TestFlowControl: a guest writing without end, and a page that does not
// acknowledge: the session stops reading, so what the guest managed to
// write and what is unacknowledged stay bounded; acks under the
// low-water mark resume it, acks above do not.
func TestFlowControl(t *testing.T) {
	chunk := bytes.Repeat([]byte("y\n"), 2048) // 4 KiB, as `yes` writes
	g := newFakeGuest(func(ctx context.Context, e *fakeExec) int {
		for {
			if _, err := e.stdout.Write(chunk); err != nil {
				return 1
			}
			select {
			case <-e.signals:
				return 129
			default:
			}
		}
	})
	h := start(t, g, Options{})
	_, e := h.hello(24, 80)
	s, ok := h.m.Session(h.ticket.Session)
	if !ok {
		t.Fatal("the session is not listed")
	}
	// bound is the most the guest can have written while paused: what is
	// unacknowledged (≤ HighWater + a batch), a batch buffered, and the
	// write blocked in the session.
	const bound = HighWater + 2*BatchBytes + 4096
	stalled := func() int64 {
		t.Helper()
		last := int64(-1)
		for range 200 {
			time.Sleep(20 * time.Millisecond)
			n := e.produced.Load()
			if n == last {
				return n
			}
			last = n
		}
		t.Fatalf("the guest kept writing (%d bytes) with no acks", last)
		return 0
	}
	produced := stalled()
	// Hold it paused a while longer: nothing more is read.
	time.Sleep(200 * time.Millisecond)
	if n := e.produced.Load(); n != produced {
		t.Errorf("the guest wrote %d more bytes while paused", n-produced)
	}
	st := s.Stats()
	t.Logf("paused: guest wrote %d, stats %+v", produced, st)
	if produced > bound {
		t.Errorf("the guest wrote %d bytes with no acks, more than %d", produced, bound)
	}
	if st.Unacked < HighWater || st.Unacked > HighWater+BatchBytes || st.PeakUnacked > HighWater+BatchBytes {
		t.Errorf("unacked %d (peak %d): want between %d and %d", st.Unacked, st.PeakUnacked, HighWater, HighWater+BatchBytes)
	}
	// Acknowledging down to just above the low-water mark does not resume.
	h.page.send(map[string]any{"type": "ack", "bytes": st.Unacked - LowWater - 1})
	time.Sleep(200 * time.Millisecond)
	if n := e.produced.Load(); n != produced {
		t.Errorf("resumed above the low-water mark: the guest wrote %d more", n-produced)
	}
	// Under it, it resumes, and pauses again.
	h.page.send(map[string]any{"type": "ack", "bytes": 2})
	deadline := time.Now().Add(5 * time.Second)
	for e.produced.Load() == produced && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if e.produced.Load() == produced {
		t.Fatal("acks under the low-water mark did not resume the output")
	}
	again := stalled()
	if st := s.Stats(); st.PeakUnacked > HighWater+BatchBytes || again-produced > bound {
		t.Errorf("after resuming: peak %d, guest wrote %d more", st.PeakUnacked, again-produced)
	}
	// All that was sent arrived, in order.
	var got []byte
	for {
		m, ok := h.page.next(50 * time.Millisecond)
		if !ok {
			break
		}
		got = append(got, m.data...)
	}
	if st := s.Stats(); int64(len(got)) != st.Sent || !bytes.Equal(got, bytes.Repeat([]byte("y\n"), len(got)/2)) {
		t.Errorf("the page got %d bytes, the session sent %d", len(got), st.Sent)
	}
}

// TestCloseHangsUpThenKills: closing the transport sends SIGHUP, and
// SIGKILL after the grace when the shell ignores it.
func TestCloseHangsUpThenKills(t *testing.T) {
	got := make(chan string, 4)
	var exec *fakeExec
	g := newFakeGuest(func(ctx context.Context, e *fakeExec) int {
		for s := range e.signals {
			exec = e
			got <- s
			if s == "SIGKILL" {
				return 137
			}
		}
		return 0
	})
	h := start(t, g, Options{})
	h.hello(24, 80)
	closed := time.Now()
	h.page.conn.Close()
	first := <-got
	second := <-got
	if first != "SIGHUP" || second != "SIGKILL" {
		t.Fatalf("signals %s, %s: want SIGHUP then SIGKILL", first, second)
	}
	// When the engine sent them, not when the fake program read them: a
	// loaded machine delays the reader, not the engine's grace timer.
	exec.mu.Lock()
	d := exec.signalledAt["SIGKILL"].Sub(exec.signalledAt["SIGHUP"])
	exec.mu.Unlock()
	if d < h.m.hangupGrace {
		t.Errorf("SIGKILL %v after SIGHUP, before the grace of %v", d, h.m.hangupGrace)
	}
	if err := h.wait(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, ok := h.m.Session(h.ticket.Session); ok {
		t.Error("the session is still listed after its shell was killed")
	}
	t.Logf("killed %v after the close", time.Since(closed))
}

func TestCloseEndsAShellThatObeysSIGHUP(t *testing.T) {
	var signals []string
	g := newFakeGuest(func(ctx context.Context, e *fakeExec) int {
		s := <-e.signals
		signals = append(signals, s)
		return 129
	})
	h := start(t, g, Options{})
	h.hello(24, 80)
	h.page.conn.Close()
	h.wait()
	if len(signals) != 1 || signals[0] != "SIGHUP" {
		t.Errorf("signals %v, want just SIGHUP", signals)
	}
}

// TestDetachedOutlivesTransport: a detached session's shell runs on after
// the page goes, until Shutdown.
func TestDetachedOutlivesTransport(t *testing.T) {
	g := newFakeGuest(echoShell)
	h := start(t, g, Options{Detach: true})
	_, e := h.hello(24, 80)
	h.page.conn.Close()
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-e.signals:
		t.Fatalf("the detached shell got %s", s)
	case <-time.After(3 * h.m.hangupGrace):
	}
	if _, ok := h.m.Session(h.ticket.Session); !ok {
		t.Fatal("the detached session is no longer listed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.m.Session(h.ticket.Session); ok {
		t.Error("the detached session outlived Shutdown")
	}
}

func TestContainerStoppedOrRemoved(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		reason    string
		reconnect bool
		// late: the exec is killed before the container is recorded
		// stopped, as when its main process exits.
		late bool
	}{
		{"stopped", nil, ReasonNotRunning, true, false},
		{"stopped, recorded late", nil, ReasonNotRunning, true, true},
		{"removed", errdefs.NotFound(errors.New("No such container: web")), ReasonRemoved, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stop := make(chan struct{})
			var g *fakeGuest
			g = newFakeGuest(func(ctx context.Context, e *fakeExec) int {
				<-stop
				if tc.late {
					time.AfterFunc(300*time.Millisecond, func() { g.setState("exited", tc.err) })
				} else {
					g.setState("exited", tc.err)
				}
				return 137
			})
			h := start(t, g, Options{})
			h.hello(24, 80)
			close(stop)
			m := h.page.control()
			if m["type"] != "error" || m["reason"] != tc.reason {
				t.Fatalf("got %v, want error %s", m, tc.reason)
			}
			if _, has := m["reconnect"]; has != tc.reconnect {
				t.Errorf("reconnect in %v: want %v", m, tc.reconnect)
			}
			if msg, _ := m["message"].(string); !strings.Contains(msg, "web") {
				t.Errorf("message %q does not name the container", msg)
			}
			h.wait()
		})
	}
	t.Run("not running at the start", func(t *testing.T) {
		g := newFakeGuest(echoShell)
		g.setState("exited", nil)
		h := start(t, g, Options{})
		m := h.page.control()
		if m["type"] != "error" || m["reason"] != ReasonNotRunning {
			t.Fatalf("got %v, want error container-not-running", m)
		}
		if msg, _ := m["message"].(string); !strings.Contains(msg, "berth start web") {
			t.Errorf("message %q does not say how to start it", msg)
		}
		h.wait()
	})
}

// TestShutdownTellsEverySession: every open session gets engine-stopping,
// its shell is ended, and no more sessions start.
func TestShutdownTellsEverySession(t *testing.T) {
	g := newFakeGuest(echoShell)
	m := NewManager(Config{Backend: g})
	m.hangupGrace = 200 * time.Millisecond
	var hs []*harness
	for range 3 {
		h := startOn(t, m, g, Options{})
		h.hello(24, 80)
		hs = append(hs, h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i, h := range hs {
		msg := h.page.control()
		if msg["type"] != "error" || msg["reason"] != ReasonStopping || msg["reconnect"] != nil {
			t.Errorf("session %d got %v, want error engine-stopping without reconnect", i, msg)
		}
		h.wait()
	}
	if len(m.Sessions()) != 0 {
		t.Errorf("%d sessions left", len(m.Sessions()))
	}
	if _, err := m.Issue(Options{Container: "web"}); !errors.Is(err, ErrStopping) {
		t.Errorf("Issue after Shutdown: %v, want ErrStopping", err)
	}
}

func TestTokens(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	m := NewManager(Config{Backend: newFakeGuest(echoShell), Now: func() time.Time { return now }})
	a, err := m.Issue(Options{Container: "web"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Issue(Options{Container: "web"})
	if len(a.Token) < 32 || a.Token == b.Token || a.Session == b.Session {
		t.Fatalf("tokens %q %q, sessions %q %q: want distinct, ≥128 bits", a.Token, b.Token, a.Session, b.Session)
	}
	for _, bad := range []string{"", "nope", a.Token[:len(a.Token)-1], a.Token + "0", strings.ToUpper(a.Token)} {
		if _, err := m.Redeem(bad); !errors.Is(err, ErrBadToken) || !errors.Is(err, errdefs.ErrPermissionDenied) {
			t.Errorf("Redeem(%q): %v, want ErrBadToken", bad, err)
		}
	}
	if tk, err := m.Redeem(a.Token); err != nil || tk.Session != a.Session {
		t.Fatalf("Redeem: %+v, %v", tk, err)
	}
	if _, err := m.Redeem(a.Token); !errors.Is(err, ErrBadToken) {
		t.Errorf("reuse: %v, want ErrBadToken", err)
	}
	now = now.Add(TokenTTL)
	if _, err := m.Redeem(b.Token); !errors.Is(err, ErrBadToken) {
		t.Errorf("expired: %v, want ErrBadToken", err)
	}
}

// TestPageLeavesBeforeTheShellStarts: no exec when the transport closes
// before the first resize.
func TestPageLeavesBeforeTheShellStarts(t *testing.T) {
	g := newFakeGuest(echoShell)
	h := start(t, g, Options{})
	if m := h.page.control(); m["type"] != "hello" {
		t.Fatalf("got %v, want hello", m)
	}
	h.page.conn.Close()
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	n := len(g.execs)
	g.mu.Unlock()
	if n != 0 {
		t.Errorf("%d execs created for a page that left", n)
	}
}

// TestFailedOutputWriteEndsTheSession: a page that cannot take output is
// gone: the shell is hung up.
func TestFailedOutputWriteEndsTheSession(t *testing.T) {
	var got []string
	g := newFakeGuest(func(ctx context.Context, e *fakeExec) int {
		io.WriteString(e.stdout, "hello\r\n")
		s := <-e.signals
		got = append(got, s)
		return 129
	})
	eng, pg := newConnPair()
	m := NewManager(Config{Backend: g})
	tk, _ := m.Issue(Options{Container: "web"})
	served := make(chan error, 1)
	go func() { served <- m.Serve(context.Background(), eng, tk) }()
	p := &page{t: t, conn: pg}
	if msg := p.control(); msg["type"] != "hello" {
		t.Fatalf("got %v", msg)
	}
	eng.failWrites.Store(true)
	p.send(map[string]any{"type": "resize", "rows": 24, "cols": 80})
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end")
	}
	if len(got) != 1 || got[0] != "SIGHUP" {
		t.Errorf("signals %v, want SIGHUP", got)
	}
}
