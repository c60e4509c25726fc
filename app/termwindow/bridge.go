package termwindow

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/berthvm/berth/engine/terminal"
)

// The bridge's message kinds, a BridgeMessage's T (docs/terminal.md, "The
// macOS window").
const (
	// KindText carries one protocol text message, D is its JSON.
	KindText = "text"
	// KindBinary carries terminal bytes, D is their standard base64.
	KindBinary = "binary"
	// KindOpen (page → Go only) asks for a new session, D is its token:
	// the page's Reconnect.
	KindOpen = "open"
)

// BridgeMessage is one message across the bridge, either way: the page
// posts it to the script message handler "berth", Go passes it to
// window.berthReceive.
type BridgeMessage struct {
	T string `json:"t"`
	D string `json:"d"`
}

// Page is the web view as Go sees it: somewhere to run JavaScript.
type Page interface {
	// EvaluateJavaScript runs script in the page, in order with the
	// scripts given before, and calls done once, from any goroutine, with
	// nil once it ran or with why it did not. It must not block.
	EvaluateJavaScript(script string, done func(error))
}

// ErrClosed is the error of a Conn's calls once it is closed.
var ErrClosed = errors.New("termwindow: the terminal window's connection is closed")

// maxQueued bounds the page → engine bytes a Conn holds unread; a page
// past it (a paste the shell does not read, tens of MiB) loses its
// session rather than the app its memory.
const maxQueued = 32 << 20

// Conn is a terminal.Conn over the bridge: ReadMessage returns what the
// page posted (handed over by Deliver), WriteMessage calls
// window.berthReceive in the page and returns once that ran.
type Conn struct {
	page Page
	// onText sees every text message to the page, before it is sent.
	onText func([]byte)

	mu     sync.Mutex
	queue  []message
	queued int
	err    error         // why the conn closed
	more   chan struct{} // cap 1: the queue grew
	closed chan struct{}
}

type message struct {
	typ  terminal.MessageType
	data []byte
}

// NewConn returns a Conn to page; onText, if not nil, sees each text
// message the engine sends (the window titles itself from hello).
func NewConn(page Page, onText func([]byte)) *Conn {
	return &Conn{page: page, onText: onText, more: make(chan struct{}, 1), closed: make(chan struct{})}
}

// ReadMessage returns the next message the page posted.
func (c *Conn) ReadMessage(ctx context.Context) (terminal.MessageType, []byte, error) {
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return 0, nil, err
		}
		if len(c.queue) > 0 {
			m := c.queue[0]
			c.queue[0] = message{}
			c.queue = c.queue[1:]
			c.queued -= len(m.data)
			c.mu.Unlock()
			return m.typ, m.data, nil
		}
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-c.closed:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
}

// Deliver queues a message from the page for ReadMessage; it never
// blocks (it runs on the main thread). Past maxQueued unread bytes it
// closes the Conn.
func (c *Conn) Deliver(typ terminal.MessageType, data []byte) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if c.queued+len(data) > maxQueued {
		c.mu.Unlock()
		c.closeWith(fmt.Errorf("termwindow: the page sent more than %d MiB the session has not read", maxQueued>>20))
		return
	}
	c.queue = append(c.queue, message{typ, data})
	c.queued += len(data)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// WriteMessage passes one message to the page's window.berthReceive and
// waits until the page ran it, for ctx, or for Close.
func (c *Conn) WriteMessage(ctx context.Context, typ terminal.MessageType, data []byte) error {
	if err := c.Err(); err != nil {
		return err
	}
	if typ == terminal.TextMessage && c.onText != nil {
		c.onText(data)
	}
	script, err := ReceiveScript(typ, data)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	c.page.EvaluateJavaScript(script, func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("termwindow: pass a message to the terminal page: %w", err)
		}
		return nil
	case <-c.closed:
		return c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the Conn: ReadMessage and WriteMessage return ErrClosed.
func (c *Conn) Close() error {
	c.closeWith(ErrClosed)
	return nil
}

func (c *Conn) closeWith(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	c.queue, c.queued = nil, 0
	close(c.closed)
}

// Err is why the Conn closed, nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ReceiveScript is the JavaScript that hands one engine message to the
// page: window.berthReceive({t: "text", d: JSON}) or, for bytes,
// window.berthReceive({t: "binary", d: BASE64}). The argument is JSON,
// which encoding/json makes a safe JavaScript literal (it escapes U+2028,
// U+2029, <, > and &).
func ReceiveScript(typ terminal.MessageType, data []byte) (string, error) {
	var m BridgeMessage
	switch typ {
	case terminal.TextMessage:
		m = BridgeMessage{T: KindText, D: string(data)}
	case terminal.BinaryMessage:
		m = BridgeMessage{T: KindBinary, D: base64.StdEncoding.EncodeToString(data)}
	default:
		return "", fmt.Errorf("termwindow: message type %d is neither text nor binary", typ)
	}
	arg, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("termwindow: encode a message to the page: %w", err)
	}
	return "window.berthReceive(" + string(arg) + ");", nil
}
