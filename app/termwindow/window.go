package termwindow

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/berthvm/berth/engine/terminal"
)

// DefaultTitle is a window's title until its session's hello names the
// container.
const DefaultTitle = "Terminal"

// Config configures a Window.
type Config struct {
	// Manager runs the window's sessions.
	Manager *terminal.Manager
	// Page is the window's web view.
	Page Page
	// Token opens the window's own session (a terminal.Ticket's Token,
	// not yet redeemed); it is redeemed when the page has loaded.
	Token string
	// SetTitle, if not nil, is called with each new title, from any
	// goroutine.
	SetTitle func(title string)
	// Log is the app's logger (default slog.Default()).
	Log *slog.Logger
}

// Window is one terminal window's model: the sessions its page shows,
// one at a time, and its title. Its methods may be called from any
// goroutine; Receive and Loaded never block.
type Window struct {
	mgr      *terminal.Manager
	page     Page
	setTitle func(string)
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	serving  sync.WaitGroup

	mu      sync.Mutex
	token   string           // the window's own session, until the page loaded
	loaded  bool             // the page loaded once
	conn    *Conn            // the current session's transport; nil: none
	options terminal.Options // the current session's, for a reload
	title   string
	closed  bool
}

// New returns the model of a window showing cfg.Page; its sessions live
// until Close or until ctx ends. Nothing starts before Loaded.
func New(ctx context.Context, cfg Config) *Window {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Window{
		mgr: cfg.Manager, page: cfg.Page, setTitle: cfg.SetTitle, log: cfg.Log,
		ctx: ctx, cancel: cancel, token: cfg.Token, title: DefaultTitle,
	}
}

// Title is the window's title: DefaultTitle, then "NAME — STATE" from
// the session's hello.
func (w *Window) Title() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.title
}

// Loaded is called each time the page has finished loading. The first
// time it redeems the window's token and starts its session; a later
// load (a reload, or a page whose web content process was restarted)
// has lost the session's screen, so it ends that session and starts a
// new one with the same options.
func (w *Window) Loaded() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if !w.loaded {
		w.loaded = true
		token := w.token
		w.token = ""
		w.openLocked(token)
		return
	}
	if w.conn == nil {
		return
	}
	t, err := w.mgr.Issue(w.options)
	if err == nil {
		t, err = w.mgr.Redeem(t.Token)
	}
	if err != nil {
		w.conn.Close()
		w.conn = nil
		w.tellLocked(fmt.Errorf("termwindow: the page reloaded and its session could not restart: %w", err))
		return
	}
	w.startLocked(t)
}

// Receive handles one message the page posted to the "berth" handler
// (its body's t and d): text and binary go to the current session, open
// redeems d and starts a new session on a new Conn (the page's
// Reconnect). Anything else is logged and dropped.
func (w *Window) Receive(t, d string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	switch t {
	case KindText:
		if w.conn != nil {
			w.conn.Deliver(terminal.TextMessage, []byte(d))
		}
	case KindBinary:
		b, err := base64.StdEncoding.DecodeString(d)
		if err != nil {
			w.log.Warn("terminal window: the page sent input that is not base64; dropped", "err", err)
			return
		}
		if w.conn != nil {
			w.conn.Deliver(terminal.BinaryMessage, b)
		}
	case KindOpen:
		w.openLocked(d)
	default:
		w.log.Warn("terminal window: unknown bridge message from the page; dropped", "t", t)
	}
}

// Close ends the window's session (its shell is hung up unless it was
// started detached) and makes every later call a no-op. It does not
// wait: Wait does.
func (w *Window) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
	w.cancel()
}

// Wait returns once every session the window started has ended.
func (w *Window) Wait() { w.serving.Wait() }

// openLocked redeems token and starts its session, or tells the page why
// it cannot.
func (w *Window) openLocked(token string) {
	t, err := w.mgr.Redeem(token)
	if err != nil {
		w.tellLocked(err)
		return
	}
	w.startLocked(t)
}

// startLocked ends the current session's transport, if any, and serves
// t on a new one.
func (w *Window) startLocked(t terminal.Ticket) {
	if w.conn != nil {
		w.conn.Close()
	}
	c := NewConn(w.page, w.sawText)
	w.conn, w.options = c, t.Options
	w.serving.Add(1)
	go func() {
		defer w.serving.Done()
		if err := w.mgr.Serve(w.ctx, c, t); err != nil {
			w.log.Info("terminal window: session ended", "session", t.Session, "err", err)
		}
	}()
}

// tellLocked shows err on the page as the protocol's error message, the
// way the page shows a session that cannot go on, with no Reconnect.
func (w *Window) tellLocked(err error) {
	w.log.Warn("terminal window: no session", "err", err)
	reason := terminal.ReasonInternal
	if errors.Is(err, terminal.ErrStopping) {
		reason = terminal.ReasonStopping
	}
	msg, _ := json.Marshal(terminal.Error{Type: "error", Reason: reason, Message: err.Error()})
	script, _ := ReceiveScript(terminal.TextMessage, msg)
	w.page.EvaluateJavaScript(script, func(err error) {
		if err != nil {
			w.log.Warn("terminal window: tell the page", "err", err)
		}
	})
}

// sawText titles the window from a hello.
func (w *Window) sawText(data []byte) {
	var h terminal.Hello
	if json.Unmarshal(data, &h) != nil || h.Type != "hello" {
		return
	}
	title := TitleFor(h.Container)
	w.mu.Lock()
	changed := title != w.title
	w.title = title
	w.mu.Unlock()
	if changed && w.setTitle != nil {
		w.setTitle(title)
	}
}

// TitleFor is a window's title for container c: "NAME — STATE", as the page
// titles itself (the ID's first 12 characters when c has no name).
func TitleFor(c terminal.ContainerInfo) string {
	name := c.Name
	if name == "" {
		name = c.ID
		if len(name) > 12 {
			name = name[:12]
		}
	}
	if name == "" {
		name = "container"
	}
	if c.State == "" {
		return name
	}
	return name + " — " + c.State
}
