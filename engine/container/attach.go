package container

import (
	"context"
	"io"
	"path/filepath"
	"sync"
)

// AttachOptions says which streams an attached client takes; a nil one is
// not attached.
type AttachOptions struct {
	// Stdin is copied into the process's input (when the container was
	// created with OpenStdin).
	Stdin io.Reader
	// Stdout and Stderr receive the output; with a tty, Stdout gets the
	// terminal's.
	Stdout, Stderr io.Writer
}

// Attach connects a client to the container's main process until the
// current (or, for a created container, the next) run ends, or ctx is
// done. With StdinOnce, the client's EOF closes the process's input. When
// Attach returns, nothing it started still writes into the process's
// input (a copy blocked on a client's Read ends once the caller closes
// opts.Stdin, as a request's connection is closed when it ends).
func (m *Manager) Attach(ctx context.Context, ref string, opts AttachOptions) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	sub := c.out.subscribe(opts.Stdout, opts.Stderr)
	defer c.out.unsubscribe(sub)
	c.mu.Lock()
	stdin := c.stdin
	openStdin, once := c.spec.Config.OpenStdin, c.spec.Config.StdinOnce
	c.mu.Unlock()
	if opts.Stdin != nil && openStdin {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			if err := stdin.copyFrom(ctx, opts.Stdin); err == nil && once {
				stdin.Close()
			}
		}()
	}
	select {
	case <-sub.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Logs sends the container's log entries that opts select to emit; with
// Follow it keeps sending until the container stops or ctx is done.
func (m *Manager) Logs(ctx context.Context, ref string, opts LogOptions, emit func(LogEntry) error) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	running := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.run != nil || c.busy == "starting"
	}
	return readLogs(ctx, filepath.Join(c.dir, "container.log"), opts, running, c.out.changed, emit)
}

// inputPipe is one run's stdin: attached clients write into it and the
// main process's stdin connection reads from it. As with io.Pipe, a write
// waits until the reader has taken it; unlike io.Pipe, a write gives up
// when its client's context ends, so a client that left never leaves a
// goroutine blocked behind a process that does not read.
type inputPipe struct {
	ch        chan []byte
	closed    chan struct{}
	closeOnce sync.Once
	buf       []byte // the reader's: what is left of the chunk it took
}

func newInputPipe() *inputPipe {
	return &inputPipe{ch: make(chan []byte), closed: make(chan struct{})}
}

// Read returns the next input; io.EOF once the pipe is closed (after
// every completed write was read).
func (p *inputPipe) Read(b []byte) (int, error) {
	if len(p.buf) == 0 {
		select {
		case p.buf = <-p.ch:
		case <-p.closed:
			return 0, io.EOF
		}
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	return n, nil
}

// copyFrom copies in into the pipe until in ends (nil), the pipe is
// closed (io.ErrClosedPipe), reading in fails, or ctx is done.
func (p *inputPipe) copyFrom(ctx context.Context, in io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, rerr := in.Read(buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			select {
			case p.ch <- chunk:
			case <-p.closed:
				return io.ErrClosedPipe
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// Close ends the input: the reader gets EOF, writers io.ErrClosedPipe.
func (p *inputPipe) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	return nil
}
