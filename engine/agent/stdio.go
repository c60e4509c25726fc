package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
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
type Attached struct {
	conns   []net.Conn
	outputs sync.WaitGroup
	mu      sync.Mutex
	err     error
}

// Attach dials the stdio ports of the created process r and copies
// between them and stdio: input until stdin's EOF, then a half-close so
// the process reads EOF; output until the guest's EOF (which comes after
// the process exited). Call it after CreateProcess and before or after
// StartProcess; output waits in the guest until it is attached.
func (c *Client) Attach(ctx context.Context, r *agentpb.CreateProcessRequest, stdio Stdio) (*Attached, error) {
	a := &Attached{}
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
		a.input(conn, stdio.Stdin)
		a.output(conn, stdio.Stdout)
		return a, nil
	}
	if r.StdinPort != 0 {
		conn, err := dial(r.StdinPort)
		if err != nil {
			return fail(err)
		}
		a.input(conn, stdio.Stdin)
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
		a.output(conn, o.w)
	}
	return a, nil
}

func (a *Attached) input(conn net.Conn, in io.Reader) {
	if in == nil {
		transport.CloseWrite(conn)
		return
	}
	go func() {
		io.Copy(conn, in)
		transport.CloseWrite(conn)
	}()
}

func (a *Attached) output(conn net.Conn, w io.Writer) {
	if w == nil {
		w = io.Discard
	}
	a.outputs.Add(1)
	go func() {
		defer a.outputs.Done()
		_, err := io.Copy(w, conn)
		if err != nil {
			a.mu.Lock()
			if a.err == nil {
				a.err = err
			}
			a.mu.Unlock()
		}
		transport.CloseWrite(conn)
	}()
}

// Wait blocks until every output stream has reached EOF and returns the
// first copy error.
func (a *Attached) Wait() error {
	a.outputs.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Close closes every stdio connection.
func (a *Attached) Close() error {
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
