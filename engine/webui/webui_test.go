package webui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/berthvm/berth/assets/web"
	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/terminal"
	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeContainers is a fake terminal.Backend: one running container whose
// execs echo their input until it ends. These tests are about the
// server's checks (no VM needed); app/terminal_e2e_test.go runs sessions
// on a real one.
type fakeContainers struct {
	mu    sync.Mutex
	execs int
}

func (f *fakeContainers) Container(ref string) (terminal.ContainerInfo, error) {
	if ref != "web" {
		return terminal.ContainerInfo{}, errdefs.NotFound(fmt.Errorf("No such container: %s", ref))
	}
	return terminal.ContainerInfo{ID: "c0ffee", Name: "web", Image: "busybox", State: "running"}, nil
}

func (f *fakeContainers) CreateExec(ctx context.Context, ref string, cfg container.ExecConfig) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.execs++
	return fmt.Sprint("exec", f.execs), nil
}

func (f *fakeContainers) created() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.execs
}

func (f *fakeContainers) StartExec(ctx context.Context, id string, stdio agent.Stdio) (int, error) {
	if stdio.Stdin == nil { // the default shell's probe
		return 0, nil
	}
	_, err := io.Copy(stdio.Stdout, stdio.Stdin)
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		return 1, err
	}
	return 0, nil
}

func (f *fakeContainers) ResizeExec(ctx context.Context, id string, rows, cols uint32) error {
	return nil
}

func (f *fakeContainers) SignalExec(ctx context.Context, id string, sig string) error { return nil }

func (f *fakeContainers) WaitStopped(ctx context.Context, ref string) error {
	<-ctx.Done()
	return ctx.Err()
}

type fixture struct {
	s     *Server
	terms *terminal.Manager
	fake  *fakeContainers
	now   *time.Time
	mu    *sync.Mutex
}

func newFixture(t *testing.T, bundle func() (fs.FS, error)) *fixture {
	t.Helper()
	now := time.Now()
	var mu sync.Mutex
	fake := &fakeContainers{}
	terms := terminal.NewManager(terminal.Config{Backend: fake, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	s, err := Start(Config{Terminals: terms, Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := terms.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return &fixture{s: s, terms: terms, fake: fake, now: &now, mu: &mu}
}

func (f *fixture) issue(t *testing.T) string {
	t.Helper()
	tk, err := f.terms.Issue(terminal.Options{Container: "web"})
	if err != nil {
		t.Fatal(err)
	}
	return tk.Token
}

func (f *fixture) wsURL(token string) string {
	return strings.Replace(f.s.URL(), "http:", "ws:", 1) + "/terminal/ws?token=" + token
}

// dial opens a session's WebSocket; the status is the HTTP answer's.
func (f *fixture) dial(t *testing.T, token, origin string) (*websocket.Conn, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, resp, err := websocket.Dial(ctx, f.wsURL(token), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, resp.StatusCode
	}
	return c, resp.StatusCode
}

// expectHello reads the hello of a session that did start.
func expectHello(t *testing.T, c *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || !strings.Contains(string(b), `"type":"hello"`) {
		t.Fatalf("first message %s %q %v, want hello", typ, b, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func (f *fixture) noSession(t *testing.T) {
	t.Helper()
	if n := len(f.terms.Sessions()); n != 0 {
		t.Errorf("%d sessions running, want none", n)
	}
	if n := f.fake.created(); n != 0 {
		t.Errorf("%d execs created, want none", n)
	}
}

func notBuilt() (fs.FS, error) { return nil, web.ErrNotBuilt }

func TestTokenChecks(t *testing.T) {
	f := newFixture(t, notBuilt)
	t.Run("missing", func(t *testing.T) {
		if _, code := f.dial(t, "", ""); code != http.StatusForbidden {
			t.Errorf("status %d, want 403", code)
		}
		f.noSession(t)
	})
	t.Run("wrong", func(t *testing.T) {
		good := f.issue(t)
		for _, bad := range []string{"x", strings.Repeat("0", 64), good[:63], good + "0"} {
			if _, code := f.dial(t, bad, ""); code != http.StatusForbidden {
				t.Errorf("token %q: status %d, want 403", bad, code)
			}
		}
		f.noSession(t)
	})
	t.Run("expired", func(t *testing.T) {
		tok := f.issue(t)
		f.mu.Lock()
		*f.now = f.now.Add(terminal.TokenTTL + time.Second)
		f.mu.Unlock()
		if _, code := f.dial(t, tok, ""); code != http.StatusForbidden {
			t.Errorf("status %d, want 403", code)
		}
		f.noSession(t)
	})
	t.Run("foreign origin", func(t *testing.T) {
		tok := f.issue(t)
		for _, o := range []string{"http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1" + f.s.URL()[len("http://127.0.0.1"):]} {
			if _, code := f.dial(t, tok, o); code != http.StatusForbidden {
				t.Errorf("Origin %s: status %d, want 403", o, code)
			}
		}
		f.noSession(t)
		// The refused requests did not use the token up.
		c, code := f.dial(t, tok, f.s.URL())
		if code != http.StatusSwitchingProtocols {
			t.Fatalf("own origin: status %d, want 101", code)
		}
		expectHello(t, c)
	})
	t.Run("reused", func(t *testing.T) {
		tok := f.issue(t)
		c, code := f.dial(t, tok, strings.Replace(f.s.URL(), "127.0.0.1", "localhost", 1))
		if code != http.StatusSwitchingProtocols {
			t.Fatalf("first use: status %d, want 101", code)
		}
		expectHello(t, c)
		before := f.fake.created()
		if _, code := f.dial(t, tok, ""); code != http.StatusForbidden {
			t.Errorf("second use: status %d, want 403", code)
		}
		if f.fake.created() != before {
			t.Error("the reused token started an exec")
		}
	})
	t.Run("not an upgrade", func(t *testing.T) {
		tok := f.issue(t)
		resp, err := http.Get(f.s.URL() + "/terminal/ws?token=" + tok)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
		c, code := f.dial(t, tok, "")
		if code != http.StatusSwitchingProtocols {
			t.Fatalf("the token was used up by a plain GET: status %d", code)
		}
		expectHello(t, c)
	})
}

func TestHostCheck(t *testing.T) {
	f := newFixture(t, notBuilt)
	port := f.s.URL()[len("http://127.0.0.1:"):]
	for _, host := range []string{"evil.example", "evil.example:" + port, "127.0.0.1", "127.0.0.1:1", "localhost", "[::1]:" + port, "127.0.0.2:" + port} {
		for _, path := range []string{"/terminal/", "/terminal/ws?token=x"} {
			req, _ := http.NewRequest("GET", f.s.URL()+path, nil)
			req.Host = host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("Host %s %s: status %d, want 421", host, path, resp.StatusCode)
			}
		}
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port} {
		req, _ := http.NewRequest("GET", f.s.URL()+"/terminal/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusMisdirectedRequest {
			t.Errorf("Host %s: refused", host)
		}
	}
}

func TestPage(t *testing.T) {
	t.Run("not built", func(t *testing.T) {
		f := newFixture(t, notBuilt)
		resp, err := http.Get(f.s.URL() + "/terminal/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), web.ErrNotBuilt.Error()) {
			t.Errorf("status %d body %q: want 503 saying %q", resp.StatusCode, b, web.ErrNotBuilt)
		}
	})
	t.Run("built", func(t *testing.T) {
		bundle := fstest.MapFS{
			"index.html": {Data: []byte("<!doctype html><title>term</title>")},
			"main.js":    {Data: []byte("console.log(1)")},
		}
		f := newFixture(t, func() (fs.FS, error) { return bundle, nil })
		for path, want := range map[string]string{"/terminal/": "<title>term</title>", "/terminal/main.js": "console.log(1)"} {
			resp, err := http.Get(f.s.URL() + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
				t.Errorf("%s: status %d body %q", path, resp.StatusCode, b)
			}
		}
		resp, err := http.Get(f.s.URL() + "/terminal/nope.js")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("missing file: status %d, want 404", resp.StatusCode)
		}
	})
}

// TestSessionOverWebSocket: a session's messages go both ways over the
// real WebSocket, and Shutdown tells it engine-stopping.
func TestSessionOverWebSocket(t *testing.T) {
	f := newFixture(t, notBuilt)
	c, code := f.dial(t, f.issue(t), f.s.URL())
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", code)
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	read := func() (websocket.MessageType, string) {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return typ, string(b)
	}
	if _, m := read(); !strings.Contains(m, `"hello"`) {
		t.Fatalf("got %s, want hello", m)
	}
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"resize","rows":24,"cols":80}`))
	c.Write(ctx, websocket.MessageBinary, []byte("ping"))
	if typ, m := read(); typ != websocket.MessageBinary || m != "ping" {
		t.Fatalf("got %s %q, want the echo", typ, m)
	}
	go f.terms.Shutdown(ctx)
	if typ, m := read(); typ != websocket.MessageText || !strings.Contains(m, `"reason":"engine-stopping"`) {
		t.Fatalf("got %s %q, want engine-stopping", typ, m)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after engine-stopping: %v, want a normal close", err)
	}
}
