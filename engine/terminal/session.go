package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
)

// Timings that are not the protocol's.
const (
	// firstResizeWait is how long a session waits for the page's first
	// resize before it starts the shell at 80x24.
	firstResizeWait = time.Second
	// writeTimeout bounds one message's write to the page.
	writeTimeout = 10 * time.Second
	// removalWait is how long an ended exec in a stopped container waits
	// to see whether the container is being removed (docker rm -f kills,
	// then removes), to tell the page which of the two happened.
	removalWait = 500 * time.Millisecond
	// stopWait is how long an exec killed by a signal (or lost) waits to
	// see whether its container is stopping: the guest kills every
	// process once the main one exits, before the engine has powered the
	// VM off and recorded the exit.
	stopWait = 3 * time.Second
)

// Session is one running terminal session.
type Session struct {
	m    *Manager
	id   string
	opts Options
	conn Conn
	out  *outbox
	log  *slog.Logger

	writeMu sync.Mutex // one WriteMessage at a time

	gone     chan struct{} // the transport's reading ended
	goneOnce sync.Once
	stopCh   chan struct{} // Shutdown: end now
	stopOnce sync.Once

	mu        sync.Mutex
	size      [2]uint // rows, cols
	sized     chan struct{}
	sizedOnce bool
	resized   chan struct{} // cap 1: size changed
	execID    string
}

// ID is the session's ID (the hello message's session).
func (s *Session) ID() string { return s.id }

// Options are what the session runs.
func (s *Session) Options() Options { return s.opts }

// Stats returns the session's output counters now.
func (s *Session) Stats() Stats { return s.out.snapshot() }

// ExecID is the exec the session runs, once started ("" before).
func (s *Session) ExecID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.execID
}

func (s *Session) stop() { s.stopOnce.Do(func() { close(s.stopCh) }) }

// execResult is how StartExec returned.
type execResult struct {
	code int
	err  error
}

// Serve runs the session t over conn until it ends, and closes conn.
// It returns when the transport is done with: the shell exited (exit
// sent), the session failed (error sent), the page closed the transport
// (the shell is hung up, unless the session is detached: then it runs on,
// tracked by the Manager, its output dropped), or Shutdown. Cancelling ctx
// is the same as the page closing the transport. The error says why a
// session ended abnormally; it is for the log, the page has been told.
func (m *Manager) Serve(ctx context.Context, conn Conn, t Ticket) error {
	s := &Session{
		m: m, id: t.Session, opts: t.Options, conn: conn, out: newOutbox(),
		log:  m.log.With("session", t.Session, "container", t.Options.Container),
		gone: make(chan struct{}), stopCh: make(chan struct{}),
		size: [2]uint{24, 80}, sized: make(chan struct{}), resized: make(chan struct{}, 1),
	}
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		s.sendError(ctx, ReasonStopping, "The Berth engine is stopping: open the terminal again once it runs.", false)
		conn.Close()
		return ErrStopping
	}
	if _, dup := m.sessions[s.id]; dup {
		m.mu.Unlock()
		conn.Close()
		return errdefs.Conflict(fmt.Errorf("terminal: session %s is already running", s.id))
	}
	m.sessions[s.id] = s
	m.running.Add(1)
	m.mu.Unlock()
	background := false
	defer func() {
		if !background {
			m.forget(s)
		}
	}()
	stopWatch := context.AfterFunc(ctx, s.transportGone)
	defer stopWatch()
	defer conn.Close()
	return s.run(ctx, &background)
}

// forget drops an ended session.
func (m *Manager) forget(s *Session) {
	m.mu.Lock()
	delete(m.sessions, s.id)
	m.mu.Unlock()
	m.running.Done()
}

func (s *Session) transportGone() { s.goneOnce.Do(func() { close(s.gone) }) }

// run is Serve's body; it sets *background when a detached session's
// shell outlives it (the goroutine waiting for it then forgets s).
func (s *Session) run(ctx context.Context, background *bool) error {
	b := s.m.backend
	info, err := b.Container(s.opts.Container)
	if err != nil {
		return s.failContainer(ctx, err)
	}
	if info.State != "running" {
		return s.notRunning(ctx, info)
	}
	// The exec and its helpers live as long as the shell, not the request.
	ectx, cancelExec := context.WithCancel(context.WithoutCancel(ctx))
	cmd, defaultShell := s.command()
	if err := s.sendJSON(ctx, Hello{Type: "hello", Session: s.id, Container: info, Command: cmd}); err != nil {
		cancelExec()
		return fmt.Errorf("terminal %s: send hello: %w", s.id, err)
	}

	done := make(chan struct{}) // closes when the helpers are to stop
	input := make(chan []byte, 64)
	var reader sync.WaitGroup
	reader.Add(1)
	go func() { defer reader.Done(); s.read(ctx, input, done) }()
	// Last, after the final messages: close the transport, which ends the
	// reader.
	defer func() {
		s.conn.Close()
		reader.Wait()
	}()

	select {
	case <-s.sized:
	case <-time.After(firstResizeWait):
	case <-s.gone:
		// The page left before the shell started: start none.
		close(done)
		cancelExec()
		return nil
	case <-s.stopCh:
		close(done)
		cancelExec()
		s.sendErrorAfterEnd(ctx, ReasonStopping, "The Berth engine is stopping: this terminal has ended.")
		return nil
	}
	s.mu.Lock()
	size := s.size
	s.mu.Unlock()
	execID, err := b.CreateExec(ectx, s.opts.Container, container.ExecConfig{
		Cmd: cmd, User: s.opts.User, WorkingDir: s.opts.WorkDir, Tty: true,
		AttachStdin: true, AttachStdout: true, AttachStderr: true, ConsoleSize: size,
	})
	if err != nil {
		close(done)
		cancelExec()
		return s.failExec(ctx, err, defaultShell)
	}
	s.mu.Lock()
	s.execID = execID
	s.mu.Unlock()

	pr, pw := io.Pipe()
	result := make(chan execResult, 1)
	go func() {
		code, err := b.StartExec(ectx, execID, agent.Stdio{Stdin: pr, Stdout: s.out})
		result <- execResult{code, err}
	}()
	var workers, feeder sync.WaitGroup
	workers.Add(2)
	feeder.Add(1)
	go func() { defer feeder.Done(); s.feed(pw, input, done) }()
	go func() { defer workers.Done(); s.resize(ectx, execID, size, done) }()
	go func() {
		defer workers.Done()
		s.out.batches(done, func(p []byte) error {
			err := s.send(ctx, BinaryMessage, p)
			if err != nil {
				// A page that cannot take output is gone.
				s.log.Debug("terminal: send output", "err", err)
				s.transportGone()
			}
			return err
		})
	}()
	// stopWorkers stops the resize and output workers (no message is
	// being written once it returns) and the input's; closeInput ends the
	// exec's input, which a detached shell keeps until it exits.
	stopWorkers := func() {
		close(done)
		workers.Wait()
	}
	closeInput := func() {
		pr.Close()
		feeder.Wait()
	}

	select {
	case r := <-result:
		stopWorkers()
		closeInput()
		cancelExec()
		if rest := s.out.take(); rest != nil {
			_ = s.sendAfterEnd(ctx, BinaryMessage, rest)
		}
		s.out.close()
		return s.exited(ctx, r, defaultShell)
	case <-s.stopCh:
		s.out.close()
		stopWorkers()
		closeInput()
		s.sendErrorAfterEnd(ctx, ReasonStopping, "The Berth engine is stopping: this terminal has ended.")
		s.hangup(ectx, execID, result)
		cancelExec()
		return nil
	case <-s.gone:
		if s.opts.Detach {
			s.out.drop()
			stopWorkers()
			*background = true
			go func() {
				defer s.m.forget(s)
				defer cancelExec()
				defer closeInput()
				select {
				case <-result:
				case <-s.stopCh:
					s.hangup(ectx, execID, result)
				}
			}()
			return nil
		}
		s.out.close()
		stopWorkers()
		closeInput()
		s.hangup(ectx, execID, result)
		cancelExec()
		return nil
	}
}

// hangup ends the shell: SIGHUP, then SIGKILL after HangupGrace; past
// another HangupGrace it gives up on the guest and cancels the exec's
// context (the caller's), which ends StartExec.
func (s *Session) hangup(ctx context.Context, execID string, result <-chan execResult) {
	if err := s.m.backend.SignalExec(ctx, execID, "SIGHUP"); err != nil {
		s.log.Debug("terminal: hang up the shell", "err", err)
	}
	t := time.NewTimer(s.m.hangupGrace)
	defer t.Stop()
	select {
	case <-result:
		return
	case <-t.C:
	}
	if err := s.m.backend.SignalExec(ctx, execID, "SIGKILL"); err != nil {
		s.log.Debug("terminal: kill the shell", "err", err)
	}
	t.Reset(s.m.hangupGrace)
	select {
	case <-result:
	case <-t.C:
		s.log.Warn("terminal: the shell did not end after SIGKILL; leaving it", "exec", execID)
	}
}

// read reads the page's messages until the transport ends: input goes to
// input, resize and ack are applied.
func (s *Session) read(ctx context.Context, input chan<- []byte, done <-chan struct{}) {
	defer s.transportGone()
	for {
		typ, data, err := s.conn.ReadMessage(ctx)
		if err != nil {
			return
		}
		switch typ {
		case BinaryMessage:
			select {
			case input <- data:
			case <-done:
				return
			}
		case TextMessage:
			var c Control
			if err := json.Unmarshal(data, &c); err != nil {
				s.log.Debug("terminal: a message that is not JSON; ignored", "err", err)
				continue
			}
			switch c.Type {
			case "resize":
				s.setSize(Clamp(c.Rows), Clamp(c.Cols))
			case "ack":
				s.out.ack(c.Bytes)
			default:
				s.log.Debug("terminal: unknown message; ignored", "type", c.Type)
			}
		}
	}
}

// Clamp is a resize's rows or cols as the pty gets it: 1..MaxSize.
func Clamp(n int) uint { return uint(min(max(n, 1), MaxSize)) }

func (s *Session) setSize(rows, cols uint) {
	s.mu.Lock()
	s.size = [2]uint{rows, cols}
	if !s.sizedOnce {
		s.sizedOnce = true
		close(s.sized)
	}
	s.mu.Unlock()
	signal(s.resized)
}

// feed writes the page's input into the exec's stdin pipe.
func (s *Session) feed(pw *io.PipeWriter, input <-chan []byte, done <-chan struct{}) {
	for {
		select {
		case b := <-input:
			if _, err := pw.Write(b); err != nil {
				return
			}
		case <-done:
			return
		}
	}
}

// resize applies size changes to the exec's pty. The exec may not have
// its process in the guest yet when the first one comes, so a failed
// resize is retried a few times (docker's CLI does the same).
func (s *Session) resize(ctx context.Context, execID string, applied [2]uint, done <-chan struct{}) {
	for {
		select {
		case <-s.resized:
		case <-done:
			return
		}
		s.mu.Lock()
		size := s.size
		s.mu.Unlock()
		if size == applied {
			continue
		}
		for try := range 10 {
			err := s.m.backend.ResizeExec(ctx, execID, uint32(size[0]), uint32(size[1]))
			if err == nil {
				applied = size
				break
			}
			s.log.Debug("terminal: resize", "err", err, "try", try)
			select {
			case <-time.After(time.Duration(try+1) * 10 * time.Millisecond):
			case <-done:
				return
			}
		}
	}
}

// command is the session's command: the given one, else DefaultShell.
func (s *Session) command() (cmd []string, defaultShell bool) {
	if len(s.opts.Cmd) > 0 {
		return s.opts.Cmd, false
	}
	return DefaultShell(), true
}

// exited tells the page how the exec ended: exit with its code while the
// container runs on, else why the container is gone. An exec killed by a
// signal may be the first sign of its container stopping: then it waits
// up to stopWait to tell which.
func (s *Session) exited(ctx context.Context, r execResult, defaultShell bool) error {
	b := s.m.backend
	info, err := b.Container(s.opts.Container)
	if err == nil && info.State == "running" && (r.code >= 128 || r.err != nil) {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopWait)
		if b.WaitStopped(wctx, s.opts.Container) == nil {
			info, err = b.Container(s.opts.Container)
		}
		cancel()
	}
	if err == nil && info.State != "running" {
		info, err = s.awaitRemoval(info)
	}
	switch {
	case err != nil:
		return s.failContainer(ctx, err)
	case info.State != "running":
		return s.notRunning(ctx, info)
	case r.err != nil:
		return s.failExec(ctx, r.err, defaultShell)
	}
	msg := Exit{Type: "exit", Code: r.code, Reconnect: s.reconnect()}
	if err := s.sendAfterEnd(ctx, TextMessage, mustJSON(msg)); err != nil {
		return fmt.Errorf("terminal %s: send exit: %w", s.id, err)
	}
	return nil
}

// awaitRemoval looks at a stopped container again for up to removalWait,
// in case it is being removed.
func (s *Session) awaitRemoval(info ContainerInfo) (ContainerInfo, error) {
	deadline := time.Now().Add(removalWait)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		i, err := s.m.backend.Container(s.opts.Container)
		if err != nil || i.State == "running" {
			return i, err
		}
		info = i
	}
	return info, nil
}

// failContainer reports a container that cannot be looked up.
func (s *Session) failContainer(ctx context.Context, err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		s.sendErrorAfterEnd(ctx, ReasonRemoved, fmt.Sprintf("The container %s has been removed.", s.opts.Container))
		return nil
	}
	s.sendErrorReconnect(ctx, ReasonInternal, fmt.Sprintf("Cannot look up the container %s: %v", s.opts.Container, err))
	return fmt.Errorf("terminal %s: %w", s.id, err)
}

func (s *Session) notRunning(ctx context.Context, info ContainerInfo) error {
	name := info.Name
	if name == "" {
		name = s.opts.Container
	}
	s.sendErrorReconnect(ctx, ReasonNotRunning,
		fmt.Sprintf("The container %s is not running (%s): start it (berth start %s), then reconnect.", name, info.State, name))
	return nil
}

// failExec reports an exec that could not run.
func (s *Session) failExec(ctx context.Context, err error, defaultShell bool) error {
	if defaultShell && errors.Is(err, errdefs.ErrNotFound) {
		s.sendErrorAfterEnd(ctx, ReasonNoShell, fmt.Sprintf(
			"The container %s has neither /bin/bash nor /bin/sh: give the command to run (berth shell %s -- COMMAND).",
			s.opts.Container, s.opts.Container))
		return nil
	}
	s.sendErrorReconnect(ctx, ReasonInternal, fmt.Sprintf("Cannot run the shell in the container %s: %v", s.opts.Container, err))
	return fmt.Errorf("terminal %s: run the shell: %w", s.id, err)
}

// reconnect issues a fresh ticket for the same container and options;
// "" when none can be (the engine is stopping).
func (s *Session) reconnect() string {
	t, err := s.m.Issue(s.opts)
	if err != nil {
		return ""
	}
	return t.Token
}

func (s *Session) sendErrorReconnect(ctx context.Context, reason, msg string) {
	s.sendError(ctx, reason, msg, true)
}

func (s *Session) sendErrorAfterEnd(ctx context.Context, reason, msg string) {
	s.sendError(ctx, reason, msg, false)
}

func (s *Session) sendError(ctx context.Context, reason, msg string, reconnect bool) {
	e := Error{Type: "error", Reason: reason, Message: msg}
	if reconnect {
		e.Reconnect = s.reconnect()
	}
	if err := s.sendAfterEnd(ctx, TextMessage, mustJSON(e)); err != nil {
		s.log.Debug("terminal: send error", "reason", reason, "err", err)
	}
}

func (s *Session) sendJSON(ctx context.Context, v any) error {
	return s.send(ctx, TextMessage, mustJSON(v))
}

// send writes one message, bounded by writeTimeout.
func (s *Session) send(ctx context.Context, typ MessageType, p []byte) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.conn.WriteMessage(ctx, typ, p)
}

// sendAfterEnd writes one of a session's last messages: the transport is
// already closed for reading, and the page may be gone.
func (s *Session) sendAfterEnd(ctx context.Context, typ MessageType, p []byte) error {
	return s.send(context.WithoutCancel(ctx), typ, p)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("terminal: marshal %T: %v", v, err))
	}
	return b
}
