package guest

import (
	"io"
	"net"
	"sync"
)

// stdinFeed delivers a process's stdin stream (the stdin or tty
// connection) to the process and ends its input in order with that
// stream. The EOF comes in-band, never from a half-close: CloseStdin
// names how many bytes of the stream precede it, and because the stream
// and the control call travel on different connections, either may
// arrive first. The feed counts the bytes it has delivered and applies a
// CloseStdin only once it has delivered as many as the call names.
//
// One goroutine (run) does every write to the process's side, so an EOF
// is never reordered with the bytes around it, and CloseStdin never
// blocks on a process that does not read.
type stdinFeed struct {
	mu      sync.Mutex
	pending bool   // a CloseStdin is waiting for its bytes
	limit   uint64 // the bytes it waits for
	wake    chan struct{}
}

func newStdinFeed() *stdinFeed {
	return &stdinFeed{wake: make(chan struct{}, 1)}
}

// closeAfter asks for the input's end once n bytes of the stream have
// been delivered (at once for 0). It may come before run starts. Two
// calls whose EOF is still pending make one EOF, after the larger count.
func (f *stdinFeed) closeAfter(n uint64) {
	f.mu.Lock()
	if !f.pending || n > f.limit {
		f.limit = n
	}
	f.pending = true
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// due reports, and clears, a pending EOF whose bytes have all been
// delivered; otherwise it returns how many more bytes come before the
// pending EOF (0 when none is pending).
func (f *stdinFeed) due(delivered uint64) (now bool, before uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.pending {
		return false, 0
	}
	if delivered >= f.limit {
		f.pending = false
		return true, 0
	}
	return false, f.limit - delivered
}

// feedSink is where a feed delivers: a pipe's write end, or a pty master.
type feedSink struct {
	w io.Writer
	// eof ends the input: closes the pipe, or types ^D on the terminal.
	eof func()
	// once: after eof nothing more is delivered (a closed pipe); a
	// terminal takes input after ^D.
	once bool
}

// run copies c (nil: no connection, as for a tty nobody attaches) to
// sink.w, applying CloseStdin calls in order, until the process has
// exited (exited is closed) or, for a pipe, c has ended: a pipe's input
// then ends too, the host having closed it or gone. A write that fails
// (the process is gone) leaves the rest of the stream to be read and
// dropped.
func (f *stdinFeed) run(c net.Conn, sink feedSink, exited <-chan struct{}) {
	var chunks chan []byte
	quit := make(chan struct{})
	defer close(quit)
	free := make(chan []byte, 2)
	free <- make([]byte, 32<<10)
	free <- make([]byte, 32<<10)
	if c != nil {
		chunks = make(chan []byte)
		go func() {
			defer close(chunks)
			for {
				var buf []byte
				select {
				case buf = <-free:
				case <-quit:
					return
				}
				n, err := c.Read(buf)
				if n > 0 {
					select {
					case chunks <- buf[:n]:
					case <-quit:
						return
					}
				} else {
					free <- buf
				}
				if err != nil {
					return
				}
			}
		}()
	}
	var delivered uint64
	ended, broken := false, false
	end := func() {
		if !ended || !sink.once {
			sink.eof()
		}
		ended = true
	}
	deliver := func(b []byte) {
		if broken || (ended && sink.once) {
			return
		}
		if _, err := sink.w.Write(b); err != nil {
			broken = true
		}
	}
	for {
		if now, _ := f.due(delivered); now {
			end()
			continue
		}
		select {
		case b, ok := <-chunks:
			if !ok {
				if sink.once {
					end()
					return
				}
				chunks = nil // a terminal outlives its connection
				continue
			}
			buf := b[:cap(b)]
			for len(b) > 0 {
				now, before := f.due(delivered)
				if now {
					end()
					continue
				}
				part := b
				if before > 0 && before < uint64(len(b)) {
					part = b[:before]
				}
				deliver(part)
				delivered += uint64(len(part))
				b = b[len(part):]
			}
			free <- buf
		case <-f.wake:
		case <-exited:
			if sink.once {
				end()
			}
			return
		}
	}
}
