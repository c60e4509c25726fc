package webui

import (
	"context"
	"fmt"

	"github.com/berthvm/berth/engine/terminal"
	"github.com/coder/websocket"
)

// Conn is a WebSocket as a terminal.Conn.
type Conn struct{ c *websocket.Conn }

// NewConn wraps a WebSocket.
func NewConn(c *websocket.Conn) *Conn { return &Conn{c: c} }

// ReadMessage reads one message.
func (w *Conn) ReadMessage(ctx context.Context) (terminal.MessageType, []byte, error) {
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		return 0, nil, err
	}
	if typ == websocket.MessageBinary {
		return terminal.BinaryMessage, b, nil
	}
	return terminal.TextMessage, b, nil
}

// WriteMessage writes one message.
func (w *Conn) WriteMessage(ctx context.Context, typ terminal.MessageType, data []byte) error {
	t := websocket.MessageText
	if typ == terminal.BinaryMessage {
		t = websocket.MessageBinary
	}
	if err := w.c.Write(ctx, t, data); err != nil {
		return fmt.Errorf("write to the terminal page: %w", err)
	}
	return nil
}

// Close closes the WebSocket with a normal closure.
func (w *Conn) Close() error { return w.c.Close(websocket.StatusNormalClosure, "") }
