// Package terminal runs terminal sessions: a shell (or a given command)
// executed with a tty in a running container, bridged to a page over a
// message transport. The protocol is docs/terminal.md's; the transport is
// anything that carries whole text and binary messages (Conn): the
// loopback WebSocket (engine/webui) or the macOS app's WKWebView bridge.
//
// A session's life:
//  1. The API asks the Manager to Issue a Ticket for a container and
//     options; the ticket's Token (≥128 random bits, one use, 2 minutes)
//     goes to the page in its URL.
//  2. The transport's server Redeems the token it is given and hands the
//     connection and the ticket to Serve.
//  3. Serve sends hello, waits (briefly) for the page's first resize,
//     starts the exec with that size, and bridges: binary messages are the
//     pty's input and output, text messages are JSON (resize, ack, exit,
//     error).
//  4. Output is batched (one binary message per ~16 ms or 64 KiB) and
//     flow-controlled: past HighWater unacknowledged bytes the session
//     stops reading the guest's output (its pty writer blocks) until the
//     page's acks bring it under LowWater.
//  5. The shell's exit sends exit with its code and a fresh reconnect
//     token; a container that stops or is removed sends error with the
//     reason; closing the transport ends the shell (SIGHUP, SIGKILL after
//     2 s) unless the session is detached; Shutdown sends engine-stopping
//     to every session and waits for all of them to end.
package terminal

import (
	"context"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/container"
)

// MessageType is the kind of one transport message.
type MessageType int

// The message types: text messages carry one JSON object, binary ones
// terminal bytes.
const (
	TextMessage   MessageType = 1
	BinaryMessage MessageType = 2
)

// Conn is a message transport: one call moves one whole message.
//
// A session calls ReadMessage from one goroutine and WriteMessage from
// one (other) goroutine; Close may be called at any time, from any
// goroutine, more than once, and must make pending and later calls of
// both return an error.
type Conn interface {
	ReadMessage(ctx context.Context) (MessageType, []byte, error)
	WriteMessage(ctx context.Context, typ MessageType, data []byte) error
	Close() error
}

// DefaultShell is the command of a session given none, and of `berth
// shell` in a terminal: the image's /bin/bash if it has one, else its
// /bin/sh, chosen in the guest by /bin/sh itself in one exec (bash is
// exec'd, so the session's process is the shell). An image without
// /bin/sh fails to start it with errdefs.ErrNotFound.
func DefaultShell() []string {
	return []string{"/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash; fi; exec /bin/sh"}
}

// Options are what a session runs: a container and, like docker exec, a
// command (empty: the image's /bin/bash, else /bin/sh), user and working
// directory. A detached session's shell outlives its transport.
type Options struct {
	Container string   `json:"container"`
	Cmd       []string `json:"cmd,omitempty"`
	User      string   `json:"user,omitempty"`
	WorkDir   string   `json:"workdir,omitempty"`
	Detach    bool     `json:"detach,omitempty"`
}

// Ticket is an issued, not yet used, session: its ID, the token that
// opens it, and its options.
type Ticket struct {
	Session string
	Token   string
	Options Options
}

// The protocol's flow-control and batching constants (docs/terminal.md).
const (
	// HighWater is the unacknowledged output past which the session stops
	// reading the guest.
	HighWater = 1 << 20
	// LowWater is the unacknowledged output below which it reads again.
	LowWater = 256 << 10
	// BatchBytes is the most output one binary message carries.
	BatchBytes = 64 << 10
	// BatchDelay is how long output waits for more before it is sent.
	BatchDelay = 16 * time.Millisecond
	// HangupGrace is how long a closed session's shell has between SIGHUP
	// and SIGKILL.
	HangupGrace = 2 * time.Second
	// TokenTTL is how long an issued token is good for.
	TokenTTL = 2 * time.Minute
	// MaxSize is the largest rows or cols a resize sets; smaller than 1 is 1.
	MaxSize = 1000
)

// Reasons an error message gives (docs/terminal.md).
const (
	ReasonNotRunning = "container-not-running"
	ReasonRemoved    = "container-removed"
	ReasonStopping   = "engine-stopping"
	ReasonNoShell    = "no-shell"
	ReasonInternal   = "internal"
)

// ContainerInfo is what the hello message tells the page of the container.
type ContainerInfo struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image string `json:"image"`
	State string `json:"state"`
}

// Backend is what sessions need of the container manager;
// ManagerBackend adapts a *container.Manager.
type Backend interface {
	// Container describes a container; an unknown one is errdefs.NotFound.
	Container(ref string) (ContainerInfo, error)
	CreateExec(ctx context.Context, ref string, cfg container.ExecConfig) (string, error)
	StartExec(ctx context.Context, id string, stdio agent.Stdio) (int, error)
	ResizeExec(ctx context.Context, id string, rows, cols uint32) error
	// SignalExec delivers sig ("SIGHUP", "9", …) to a running exec.
	SignalExec(ctx context.Context, id string, sig string) error
	// WaitStopped returns once the container is not running (or ctx is
	// done, with its error).
	WaitStopped(ctx context.Context, ref string) error
}

// Stats are a session's output counters.
type Stats struct {
	// Sent is the output bytes sent to the page so far.
	Sent int64
	// Unacked is the output sent and not yet acknowledged.
	Unacked int64
	// PeakUnacked is the most Unacked has been.
	PeakUnacked int64
	// Acked is the output the page acknowledged.
	Acked int64
}

// Messages (docs/terminal.md's table).

// Hello is the first message of every session.
type Hello struct {
	Type      string        `json:"type"` // "hello"
	Session   string        `json:"session"`
	Container ContainerInfo `json:"container"`
	Command   []string      `json:"command"`
}

// Exit says the shell ended.
type Exit struct {
	Type      string `json:"type"` // "exit"
	Code      int    `json:"code"`
	Reconnect string `json:"reconnect,omitempty"`
}

// Error says the session cannot go on.
type Error struct {
	Type      string `json:"type"` // "error"
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	Reconnect string `json:"reconnect,omitempty"`
}

// Control is a page → engine message: resize (Cols, Rows) or ack (Bytes).
type Control struct {
	Type  string `json:"type"`
	Cols  int    `json:"cols,omitempty"`
	Rows  int    `json:"rows,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
}
