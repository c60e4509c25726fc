package guest

import (
	"fmt"
	"io"
	"net"
	"os"

	"github.com/creack/pty"
)

// setupStdio makes the process's stdio — a pty, or pipes, or /dev/null
// where the host named no port — starts the goroutines that copy between
// them and the host's connections, and returns the child's ends (stdin,
// stdout, stderr), for the caller to pass on and close.
func (p *process) setupStdio() ([]*os.File, error) {
	if p.req.Tty {
		return p.setupTty()
	}
	var child []*os.File
	fail := func(err error) ([]*os.File, error) {
		closeAll(child)
		return nil, err
	}
	in, err := p.inputPipe(p.req.StdinPort)
	if err != nil {
		return fail(err)
	}
	child = append(child, in)
	for _, port := range []uint32{p.req.StdoutPort, p.req.StderrPort} {
		out, err := p.outputPipe(port)
		if err != nil {
			return fail(err)
		}
		child = append(child, out)
	}
	return child, nil
}

func (p *process) keep(c io.Closer) {
	p.mu.Lock()
	p.closers = append(p.closers, c)
	p.mu.Unlock()
}

// inputPipe returns the child's stdin: /dev/null, or a pipe fed from the
// connection on port by p.stdin, which closes it at the host's CloseStdin
// (after the bytes written before it), or when the connection ends.
func (p *process) inputPipe(port uint32) (*os.File, error) {
	if port == 0 {
		return os.Open(os.DevNull)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("stdin pipe: %w", err)
	}
	p.keep(w)
	p.s.goSafe("stdin of "+p.id, func() {
		sink := feedSink{w: w, eof: func() { w.Close() }, once: true}
		c, err := p.accept(port)
		if err != nil {
			w.Close()
			return
		}
		p.stdin.run(c, sink, p.exitCh)
	})
	return r, nil
}

// outputPipe returns the child's stdout or stderr: /dev/null, or a pipe
// copied to the connection on port. The connection is closed (fully: no
// transport needs a half-close) only after the pipe's EOF and the
// process's exit, so that the host, reading to the end, has every byte
// and finds the exit status final.
func (p *process) outputPipe(port uint32) (*os.File, error) {
	if port == 0 {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	p.keep(r)
	p.outputs.Add(1)
	p.s.goSafe("output of "+p.id, func() {
		defer r.Close()
		c, err := p.accept(port)
		if err != nil {
			p.outputs.Done()
			return
		}
		io.Copy(c, r)
		<-p.exitCh
		finishOutput(c, p.outputs.Done)
	})
	return w, nil
}

// finishOutput ends an output stream whose last byte was written: it
// closes c and calls flushed. A close keeps the order of the bytes
// before it on every transport (vsock, yamux, unix sockets): the host
// reads them all, then the end.
func finishOutput(c net.Conn, flushed func()) {
	c.Close()
	flushed()
}

// setupTty opens a pty sized as asked, copies between its master and the
// connection on the tty port, and returns the slave three times.
func (p *process) setupTty() ([]*os.File, error) {
	m, tty, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	if p.req.Rows > 0 && p.req.Cols > 0 {
		if err := pty.Setsize(m, &pty.Winsize{Rows: uint16(p.req.Rows), Cols: uint16(p.req.Cols)}); err != nil {
			m.Close()
			tty.Close()
			return nil, fmt.Errorf("size pty: %w", err)
		}
	}
	p.mu.Lock()
	p.ptyMaster = m
	p.mu.Unlock()
	p.keep(m)
	port := p.req.TtyPort
	// CloseStdin types the terminal's EOF character, after the input
	// written before it; the terminal takes more input afterwards.
	sink := feedSink{w: m, eof: func() { m.Write([]byte{4}) }}
	p.outputs.Add(1)
	p.s.goSafe("tty of "+p.id, func() {
		if port == 0 {
			p.s.goSafe("tty input of "+p.id, func() { p.stdin.run(nil, sink, p.exitCh) })
			io.Copy(io.Discard, m)
			p.outputs.Done()
			return
		}
		c, err := p.accept(port)
		if err != nil {
			p.outputs.Done()
			return
		}
		p.s.goSafe("tty input of "+p.id, func() { p.stdin.run(c, sink, p.exitCh) })
		copyPty(c, m)
		<-p.exitCh
		finishOutput(c, p.outputs.Done)
	})
	return []*os.File{tty, tty, tty}, nil
}

// copyPty copies the pty master's output to c until every slave is closed
// (the read fails with EIO). If the host stops reading, the rest of the
// output is drained so that the process never blocks on its terminal.
func copyPty(c net.Conn, m *os.File) {
	buf := make([]byte, 32<<10)
	for {
		n, err := m.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				io.Copy(io.Discard, m)
				return
			}
		}
		if err != nil {
			return // EIO: the last slave closed
		}
	}
}
