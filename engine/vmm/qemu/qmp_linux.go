//go:build linux

package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
)

// qmp is a minimal client of the QEMU Machine Protocol over one connected
// socket: one command at a time, events handed to a callback.
type qmp struct {
	conn    net.Conn
	onEvent func(qmpEvent)

	mu      sync.Mutex // one command in flight
	replies chan qmpReply
	done    chan struct{}
	err     error // why the connection ended; read after done
}

type qmpEvent struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// newQMP reads the greeting, negotiates capabilities and starts the
// reader. onEvent runs on the reader goroutine.
func newQMP(ctx context.Context, conn net.Conn, onEvent func(qmpEvent)) (*qmp, error) {
	q := &qmp{conn: conn, onEvent: onEvent, replies: make(chan qmpReply, 1), done: make(chan struct{})}
	greeting := make(chan error, 1)
	go q.read(greeting)
	select {
	case err := <-greeting:
		if err != nil {
			return nil, fmt.Errorf("qmp greeting: %w", err)
		}
	case <-ctx.Done():
		conn.Close()
		return nil, fmt.Errorf("qmp greeting: %w", ctx.Err())
	}
	if _, err := q.execute(ctx, "qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *qmp) read(greeting chan<- error) {
	defer close(q.done)
	sc := bufio.NewScanner(q.conn)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	first := true
	for sc.Scan() {
		line := sc.Bytes()
		if first {
			first = false
			var g struct {
				QMP json.RawMessage `json:"QMP"`
			}
			if err := json.Unmarshal(line, &g); err != nil || g.QMP == nil {
				greeting <- fmt.Errorf("unexpected %q", line)
				q.err = errors.New("no QMP greeting")
				return
			}
			greeting <- nil
			continue
		}
		var msg struct {
			qmpReply
			qmpEvent
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			continue
		}
		if msg.Event != "" {
			if q.onEvent != nil {
				q.onEvent(msg.qmpEvent)
			}
			continue
		}
		select {
		case q.replies <- msg.qmpReply:
		default: // a reply nobody waits for (a command that timed out)
		}
	}
	q.err = sc.Err()
	if q.err == nil {
		q.err = errors.New("QMP connection closed")
	}
	if first {
		greeting <- q.err
	}
}

// execute runs one command and returns its "return" value.
func (q *qmp) execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	// Drop a stale reply left by an earlier command that gave up.
	select {
	case <-q.replies:
	default:
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	select {
	case r := <-q.replies:
		if r.Error != nil {
			return nil, fmt.Errorf("qmp %s: %s: %s", cmd, r.Error.Class, r.Error.Desc)
		}
		return r.Return, nil
	case <-q.done:
		return nil, fmt.Errorf("qmp %s: %w", cmd, q.err)
	case <-ctx.Done():
		return nil, fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	}
}

// status runs query-status and returns the run state ("running",
// "paused", "shutdown", ...).
func (q *qmp) status(ctx context.Context) (string, error) {
	r, err := q.execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(r, &st); err != nil {
		return "", fmt.Errorf("qmp query-status: %w", err)
	}
	return st.Status, nil
}
