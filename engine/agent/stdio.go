package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"

	"github.com/berthvm/berth/engine/agent/agentpb"
)

// Stdio is what a process's stdio is copied from and to. A nil Stdin
// gives the process EOF at once; a nil Stdout or Stderr discards. With a
// tty, Stdout receives the terminal's output and Stderr is unused.
type Stdio struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// AssignPorts fills r's stdio ports from c.NextPort for the streams stdio
// has: the tty port with r.Tty, else one port for each of Stdin, Stdout
// and Stderr that is set (an unset one is /dev/null in the guest).
func (c *Client) AssignPorts(r *agentpb.CreateProcessRequest, stdio Stdio) {
	if r.Tty {
		r.TtyPort = c.NextPort()
		return
	}
	if stdio.Stdin != nil {
		r.StdinPort = c.NextPort()
	}
	if stdio.Stdout != nil {
		r.StdoutPort = c.NextPort()
	}
	if stdio.Stderr != nil {
		r.StderrPort = c.NextPort()
	}
}

// Attached is a process's stdio, connected and being copied.
//
// No stdio connection is ever half-closed, on any transport (vz's vsock
// connections cannot be): stdin's EOF is carried in-band by CloseStdin,
// with the count of bytes written before it, and an output stream ends
// when the guest closes its connection, after the process exited and the
// stream's last byte was written.
type Attached struct {
	c       *Client
	id      string
	ctx     context.Context // for CloseStdin; cancelled by Close
	cancel  context.CancelFunc
	conns   []net.Conn
	outputs sync.WaitGroup
	mu      sync.Mutex
	err     error
}

// Attach dials the stdio ports of the created process r and copies
// between them and stdio. Input is copied until stdin's EOF; then, for a
// pipe, Attach calls CloseStdin with the number of bytes written, and the
// guest ends the process's input once it has delivered them all. With a
// tty, as in Docker, stdin's EOF only stops the copy: the process's input
// stays open (its output goes on), and a caller that wants the terminal's
// EOF calls Client.CloseStdin (^D). Output is copied until the guest
// closes the stream (after the process exited). Call Attach after
// CreateProcess and before or after StartProcess; output waits in the
// guest until it is attached.
func (c *Client) Attach(ctx context.Context, r *agentpb.CreateProcessRequest, stdio Stdio) (*Attached, error) {
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a := &Attached{c: c, id: r.Id, ctx: actx, cancel: cancel}
	dial := func(port uint32) (net.Conn, error) {
		conn, err := c.dialer.DialPort(ctx, port)
		if err != nil {
			return nil, fmt.Errorf("attach to %s: %w", r.Id, err)
		}
		a.conns = append(a.conns, conn)
		return conn, nil
	}
	fail := func(err error) (*Attached, error) {
		a.Close()
		return nil, err
	}
	if r.Tty {
		if r.TtyPort == 0 {
			return a, nil
		}
		conn, err := dial(r.TtyPort)
		if err != nil {
			return fail(err)
		}
		a.input(conn, stdio.Stdin, true)
		a.output(conn, stdio.Stdout, true)
		return a, nil
	}
	if r.StdinPort != 0 {
		conn, err := dial(r.StdinPort)
		if err != nil {
			return fail(err)
		}
		a.input(conn, stdio.Stdin, false)
	}
	for _, o := range []struct {
		port uint32
		w    io.Writer
	}{{r.StdoutPort, stdio.Stdout}, {r.StderrPort, stdio.Stderr}} {
		if o.port == 0 {
			continue
		}
		conn, err := dial(o.port)
		if err != nil {
			return fail(err)
		}
		a.output(conn, o.w, false)
	}
	return a, nil
}

// input copies in to conn until in ends (or conn fails), then, for a
// pipe, sends the EOF in-band: CloseStdin with the count of bytes
// written, so that the guest delivers each of them before the EOF
// however the two connections interleave. The connection stays open
// until Close. A tty's input is never ended on in's EOF (see Attach).
func (a *Attached) input(conn net.Conn, in io.Reader, tty bool) {
	go func() {
		var n int64
		if in != nil {
			// A failed write means the guest closed the stream: the
			// process is gone, and its stdin with it.
			n, _ = io.Copy(conn, in)
		}
		if tty {
			return
		}
		// An error here means the process or the guest is gone (or
		// Close was called): its input has ended either way.
		_ = a.c.closeStdin(a.ctx, a.id, uint64(n))
	}()
}

// output copies conn to w until the guest closes the stream. A write to
// w that fails is recorded, and the rest of the stream is read and
// dropped, so the process never blocks on an output nobody takes.
func (a *Attached) output(conn net.Conn, w io.Writer, tty bool) {
	if w == nil {
		w = io.Discard
	}
	a.outputs.Add(1)
	go func() {
		defer a.outputs.Done()
		defer conn.Close()
		err := copyOutput(w, conn)
		if tty && errors.Is(err, syscall.ECONNRESET) {
			// The guest closed the tty stream with some of our input
			// unread (the process had exited): a socket then reports a
			// reset, but only after every byte the guest wrote.
			err = nil
		}
		if err != nil {
			a.setErr(err)
		}
	}()
}

// copyOutput copies conn to w until conn ends; io.EOF is no error. After
// a failed write it drops the rest and returns the write's error.
func copyOutput(w io.Writer, conn net.Conn) error {
	buf := make([]byte, 32<<10)
	var werr error
	for {
		n, err := conn.Read(buf)
		if n > 0 && werr == nil {
			if _, werr = w.Write(buf[:n]); werr != nil {
				werr = fmt.Errorf("write output: %w", werr)
			}
		}
		if err == io.EOF {
			return werr
		}
		if err != nil {
			if werr != nil {
				return werr
			}
			return err
		}
	}
}

func (a *Attached) setErr(err error) {
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
}

// Wait blocks until every output stream has reached EOF and returns the
// first copy error.
func (a *Attached) Wait() error {
	a.outputs.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Close closes every stdio connection and abandons a CloseStdin in
// flight.
func (a *Attached) Close() error {
	a.cancel()
	for _, c := range a.conns {
		c.Close()
	}
	return nil
}

// Run creates the process r (assigning stdio ports for stdio), attaches
// its stdio, starts it, waits for it and its output, and deletes it. A
// start failure is returned as the error; the exit code a shell would
// show is then 127 for errdefs.ErrNotFound (missing binary), else 126
// (errdefs.ErrPermissionDenied: not executable).
func (c *Client) Run(ctx context.Context, r *agentpb.CreateProcessRequest, stdio Stdio) (ExitStatus, error) {
	c.AssignPorts(r, stdio)
	if err := c.CreateProcess(ctx, r); err != nil {
		return ExitStatus{}, err
	}
	defer c.DeleteProcess(context.WithoutCancel(ctx), r.Id)
	a, err := c.Attach(ctx, r, stdio)
	if err != nil {
		return ExitStatus{}, err
	}
	defer a.Close()
	if _, err := c.StartProcess(ctx, r.Id); err != nil {
		return ExitStatus{}, err
	}
	st, err := c.WaitProcess(ctx, r.Id)
	if err != nil {
		return ExitStatus{}, err
	}
	if err := a.Wait(); err != nil {
		return st, fmt.Errorf("copy output of %s: %w", r.Id, err)
	}
	return st, nil
}
