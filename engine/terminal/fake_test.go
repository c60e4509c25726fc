package terminal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
)

// fakeGuest is a fake Backend: a container whose execs run program, a Go
// function standing in for the shell, with no VM. It is a fake because
// these unit tests drive the session's protocol, batching and flow
// control byte by byte, which a real guest cannot do deterministically;
// app/terminal_e2e_test.go runs the same session against a real VM.
type fakeGuest struct {
	hasSh   bool
	program func(ctx context.Context, e *fakeExec) int

	mu      sync.Mutex
	info    ContainerInfo
	infoErr error
	stopped chan struct{} // closed once the container is not running
	execs   map[string]*fakeExec
	n       int
	started chan *fakeExec // each tty exec, once started
}

type fakeExec struct {
	id      string
	cfg     container.ExecConfig
	stdin   io.Reader
	stdout  io.Writer
	signals chan string

	mu      sync.Mutex
	resizes [][2]uint32
	running bool
	// signalledAt is when the engine sent each signal (by name): the
	// moment SignalExec was called, not when the program got to it.
	signalledAt map[string]time.Time
	// produced counts the output bytes the program has written (its
	// writes returned).
	produced atomic.Int64
}

func newFakeGuest(program func(ctx context.Context, e *fakeExec) int) *fakeGuest {
	return &fakeGuest{
		hasSh: true, program: program,
		info:  ContainerInfo{ID: "c0ffee", Name: "web", Image: "busybox", State: "running"},
		execs: map[string]*fakeExec{}, started: make(chan *fakeExec, 16), stopped: make(chan struct{}),
	}
}

func (g *fakeGuest) setState(state string, err error) {
	g.mu.Lock()
	g.info.State, g.infoErr = state, err
	if state != "running" {
		select {
		case <-g.stopped:
		default:
			close(g.stopped)
		}
	}
	g.mu.Unlock()
}

func (g *fakeGuest) WaitStopped(ctx context.Context, ref string) error {
	select {
	case <-g.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *fakeGuest) Container(ref string) (ContainerInfo, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.infoErr != nil {
		return ContainerInfo{}, g.infoErr
	}
	if ref != g.info.ID && ref != g.info.Name {
		return ContainerInfo{}, errdefs.NotFound(fmt.Errorf("No such container: %s", ref))
	}
	return g.info, nil
}

func (g *fakeGuest) CreateExec(ctx context.Context, ref string, cfg container.ExecConfig) (string, error) {
	if _, err := g.Container(ref); err != nil {
		return "", err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	e := &fakeExec{id: fmt.Sprintf("exec%d", g.n), cfg: cfg, signals: make(chan string, 8)}
	g.execs[e.id] = e
	return e.id, nil
}

var errNoFile = errdefs.NotFound(errors.New("no such file or directory"))

func (g *fakeGuest) StartExec(ctx context.Context, id string, stdio agent.Stdio) (int, error) {
	g.mu.Lock()
	e := g.execs[id]
	g.mu.Unlock()
	if e.cfg.Cmd[0] == "/bin/sh" && !g.hasSh {
		return 127, errdefs.InvalidArgument(fmt.Errorf("exec: %q: %w", e.cfg.Cmd[0], errNoFile))
	}
	e.stdin, e.stdout = stdio.Stdin, &countingWriter{w: stdio.Stdout, n: &e.produced}
	e.mu.Lock()
	e.running = true
	e.mu.Unlock()
	g.started <- e
	code := g.program(ctx, e)
	e.mu.Lock()
	e.running = false
	e.mu.Unlock()
	if ctx.Err() != nil {
		return 137, ctx.Err()
	}
	return code, nil
}

func (g *fakeGuest) ResizeExec(ctx context.Context, id string, rows, cols uint32) error {
	g.mu.Lock()
	e := g.execs[id]
	g.mu.Unlock()
	e.mu.Lock()
	e.resizes = append(e.resizes, [2]uint32{rows, cols})
	e.mu.Unlock()
	return nil
}

func (g *fakeGuest) SignalExec(ctx context.Context, id string, sig string) error {
	g.mu.Lock()
	e := g.execs[id]
	g.mu.Unlock()
	e.mu.Lock()
	running := e.running
	e.mu.Unlock()
	if !running {
		return errdefs.Conflict(fmt.Errorf("exec %s is not running", id))
	}
	e.mu.Lock()
	if e.signalledAt == nil {
		e.signalledAt = map[string]time.Time{}
	}
	e.signalledAt[sig] = time.Now()
	e.mu.Unlock()
	e.signals <- sig
	return nil
}

func (e *fakeExec) lastResize() [2]uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.resizes) == 0 {
		return [2]uint32{}
	}
	return e.resizes[len(e.resizes)-1]
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// lines delivers the exec's input lines until its stdin ends.
func (e *fakeExec) lines() <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(e.stdin)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// echoShell is a program that echoes every input line, exits with N on
// "exit N", and ends on SIGHUP or SIGKILL (code 129, 137).
func echoShell(ctx context.Context, e *fakeExec) int {
	in := e.lines()
	for {
		select {
		case l, ok := <-in:
			if !ok {
				return 0
			}
			var code int
			if _, err := fmt.Sscanf(l, "exit %d", &code); err == nil {
				return code
			}
			if _, err := io.WriteString(e.stdout, l+"\r\n"); err != nil {
				return 1
			}
		case sig := <-e.signals:
			if sig == "SIGKILL" {
				return 137
			}
			return 129
		case <-ctx.Done():
			return 137
		}
	}
}

// pipeConn is one end of an in-memory Conn pair: the session's end reads
// what the test's page writes and the other way round.
type pipeConn struct {
	in, out chan message
	closed  chan struct{}
	once    *sync.Once
	// failWrites makes this end's writes fail, as a page that stopped
	// reading past the write timeout.
	failWrites atomic.Bool
}

type message struct {
	typ  MessageType
	data []byte
}

func newConnPair() (engine, page *pipeConn) {
	a, b := make(chan message, 4096), make(chan message, 4096)
	closed, once := make(chan struct{}), &sync.Once{}
	return &pipeConn{in: a, out: b, closed: closed, once: once}, &pipeConn{in: b, out: a, closed: closed, once: once}
}

func (c *pipeConn) ReadMessage(ctx context.Context) (MessageType, []byte, error) {
	select {
	case m := <-c.in:
		return m.typ, m.data, nil
	case <-c.closed:
		return 0, nil, io.EOF
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

func (c *pipeConn) WriteMessage(ctx context.Context, typ MessageType, data []byte) error {
	if c.failWrites.Load() {
		return errors.New("write: the page is not reading")
	}
	select {
	case <-c.closed:
		return io.ErrClosedPipe
	default:
	}
	select {
	case c.out <- message{typ, append([]byte(nil), data...)}:
		return nil
	case <-c.closed:
		return io.ErrClosedPipe
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *pipeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// page is the test's side of a session.
type page struct {
	t    *testing.T
	conn *pipeConn
	// out is the terminal output read so far.
	out []byte
}

// next returns the next message, even after the transport closed (what
// was written before is still there).
func (p *page) next(timeout time.Duration) (message, bool) {
	p.t.Helper()
	select {
	case m := <-p.conn.in:
		return m, true
	case <-time.After(timeout):
		return message{}, false
	}
}

// control reads until the next text message, collecting output, and
// decodes it into a map.
func (p *page) control() map[string]any {
	p.t.Helper()
	for {
		m, ok := p.next(5 * time.Second)
		if !ok {
			p.t.Fatalf("no text message within 5s; output so far %q", p.out)
		}
		if m.typ == BinaryMessage {
			p.out = append(p.out, m.data...)
			continue
		}
		var v map[string]any
		if err := json.Unmarshal(m.data, &v); err != nil {
			p.t.Fatalf("text message %q: %v", m.data, err)
		}
		return v
	}
}

func (p *page) send(v any) {
	b, _ := json.Marshal(v)
	p.conn.WriteMessage(context.Background(), TextMessage, b)
}

func (p *page) input(s string) {
	p.conn.WriteMessage(context.Background(), BinaryMessage, []byte(s))
}

// readOutputUntil collects binary messages until the output contains
// want.
func (p *page) readOutputUntil(want string) {
	p.t.Helper()
	deadline := time.After(5 * time.Second)
	for !bytes.Contains(p.out, []byte(want)) {
		select {
		case m := <-p.conn.in:
			if m.typ != BinaryMessage {
				p.t.Fatalf("waiting for output %q, got the message %s", want, m.data)
			}
			p.out = append(p.out, m.data...)
		case <-deadline:
			p.t.Fatalf("output %q never came; got %q", want, p.out)
		}
	}
}
