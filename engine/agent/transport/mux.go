package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// The yamux transport carries connections by port over one byte stream
// (the guest's virtio-serial port; a unix socket on the host). The host is
// the yamux client and opens one stream per connection; each stream begins
// with a header naming the port:
//
//	byte 0     'B' (0x42)
//	byte 1     version, 1
//	bytes 2-5  port, big-endian uint32
//
// and the guest answers with one byte before any data: muxOK, or
// muxRefused when nothing listens on the port (DialPort then fails at once
// with an error naming the port), or muxBadHeader.
const (
	muxMagic     = 'B'
	muxVersion   = 1
	muxHeaderLen = 6

	muxOK        byte = 0
	muxRefused   byte = 1
	muxBadHeader byte = 2

	// muxHandshakeTimeout bounds the header exchange of one stream.
	muxHandshakeTimeout = 10 * time.Second
)

// muxConfig is yamux's configuration for both ends. Keepalives are off: a
// guest under TCG or a paused VM may stay silent for long; the byte stream
// ending is what tells either side the other is gone.
func muxConfig(logger *log.Logger) *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.ConnectionWriteTimeout = 60 * time.Second
	// An unanswered stream open must not end the session (yamux closes
	// the whole session when StreamOpenTimeout passes): a guest still
	// booting answers late, and DialPort bounds its own wait.
	cfg.StreamOpenTimeout = 0
	if logger != nil {
		cfg.Logger = logger
		cfg.LogOutput = nil
	} else {
		cfg.LogOutput = io.Discard
	}
	return cfg
}

// MuxDialer is the host end of the yamux transport: a Dialer whose
// connections are yamux streams over one byte stream.
type MuxDialer struct {
	sess *yamux.Session
}

// NewMuxDialer starts a yamux client session over conn (the host end of
// the guest's virtio-serial port). Closing the MuxDialer closes conn.
func NewMuxDialer(conn io.ReadWriteCloser) (*MuxDialer, error) {
	sess, err := yamux.Client(newCoalescer(conn), muxConfig(nil))
	if err != nil {
		return nil, fmt.Errorf("start yamux client: %w", err)
	}
	return &MuxDialer{sess: sess}, nil
}

// DialPort opens a stream to port and waits for the guest to accept it.
func (d *MuxDialer) DialPort(ctx context.Context, port uint32) (net.Conn, error) {
	st, err := d.sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("dial agent port %d: open yamux stream: %w", port, err)
	}
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	} else {
		st.SetDeadline(time.Now().Add(muxHandshakeTimeout))
	}
	var hdr [muxHeaderLen]byte
	hdr[0], hdr[1] = muxMagic, muxVersion
	binary.BigEndian.PutUint32(hdr[2:], port)
	var ans [1]byte
	if _, err = st.Write(hdr[:]); err == nil {
		_, err = io.ReadFull(st, ans[:])
	}
	if !stop() || ctx.Err() != nil {
		st.Close()
		return nil, fmt.Errorf("dial agent port %d: %w", port, ctx.Err())
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("dial agent port %d: %w", port, err)
	}
	st.SetDeadline(time.Time{})
	switch ans[0] {
	case muxOK:
		return &muxConn{Stream: st}, nil
	case muxRefused:
		st.Close()
		return nil, fmt.Errorf("dial agent port %d: connection refused: nothing listens on port %d in the guest", port, port)
	default:
		st.Close()
		return nil, fmt.Errorf("dial agent port %d: guest rejected the stream header (answer %d)", port, ans[0])
	}
}

// Close ends the session and the byte stream under it.
func (d *MuxDialer) Close() error { return d.sess.Close() }

// Done is closed when the session has ended (the guest went away).
func (d *MuxDialer) Done() <-chan struct{} { return d.sess.CloseChan() }

// MuxListener is the guest end of the yamux transport: a Listener whose
// per-port listeners receive the streams the host opens.
type MuxListener struct {
	sess *yamux.Session

	mu    sync.Mutex
	ports map[uint32]*muxPortListener
}

// NewMuxListener starts a yamux server session over conn (the guest's
// virtio-serial port) and dispatches incoming streams to the listeners
// ListenPort creates. Closing the MuxListener closes conn.
func NewMuxListener(conn io.ReadWriteCloser, logger *log.Logger) (*MuxListener, error) {
	sess, err := yamux.Server(newCoalescer(conn), muxConfig(logger))
	if err != nil {
		return nil, fmt.Errorf("start yamux server: %w", err)
	}
	m := &MuxListener{sess: sess, ports: map[uint32]*muxPortListener{}}
	go m.acceptLoop()
	return m, nil
}

// Close ends the session, the byte stream and every port's listener.
func (m *MuxListener) Close() error { return m.sess.Close() }

// Done is closed when the session has ended.
func (m *MuxListener) Done() <-chan struct{} { return m.sess.CloseChan() }

// ListenPort returns a listener for streams addressed to port. Only one
// listener may hold a port at a time.
func (m *MuxListener) ListenPort(port uint32) (net.Listener, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess.IsClosed() {
		return nil, fmt.Errorf("listen on agent port %d: %w", port, net.ErrClosed)
	}
	if _, ok := m.ports[port]; ok {
		return nil, fmt.Errorf("listen on agent port %d: port in use", port)
	}
	l := &muxPortListener{
		owner: m,
		port:  port,
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
	}
	m.ports[port] = l
	return l, nil
}

func (m *MuxListener) acceptLoop() {
	for {
		st, err := m.sess.AcceptStream()
		if err != nil {
			m.closeAll()
			return
		}
		go m.dispatch(st)
	}
}

// dispatch reads the stream's header, answers it, and hands the stream to
// the port's listener.
func (m *MuxListener) dispatch(st *yamux.Stream) {
	st.SetDeadline(time.Now().Add(muxHandshakeTimeout))
	var hdr [muxHeaderLen]byte
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		st.Close()
		return
	}
	if hdr[0] != muxMagic || hdr[1] != muxVersion {
		st.Write([]byte{muxBadHeader})
		st.Close()
		return
	}
	port := binary.BigEndian.Uint32(hdr[2:])
	m.mu.Lock()
	l := m.ports[port]
	m.mu.Unlock()
	if l == nil {
		st.Write([]byte{muxRefused})
		st.Close()
		return
	}
	if _, err := st.Write([]byte{muxOK}); err != nil {
		st.Close()
		return
	}
	st.SetDeadline(time.Time{})
	c := &muxConn{Stream: st}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (m *MuxListener) closeAll() {
	m.mu.Lock()
	ls := make([]*muxPortListener, 0, len(m.ports))
	for _, l := range m.ports {
		ls = append(ls, l)
	}
	m.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
}

type muxPortListener struct {
	owner *MuxListener
	port  uint32
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (l *muxPortListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("accept on agent port %d: %w", l.port, net.ErrClosed)
	}
}

func (l *muxPortListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.owner.mu.Lock()
		if l.owner.ports[l.port] == l {
			delete(l.owner.ports, l.port)
		}
		l.owner.mu.Unlock()
	})
	return nil
}

func (l *muxPortListener) Addr() net.Addr { return muxAddr(l.port) }

type muxAddr uint32

func (a muxAddr) Network() string { return "berth-mux" }
func (a muxAddr) String() string  { return fmt.Sprintf("port %d", uint32(a)) }

// muxConn gives a yamux stream the net.Conn semantics of a socket:
// CloseWrite ends the outgoing half (a yamux FIN) and Close ends both —
// yamux's own Close is only a half-close, so Close also discards whatever
// the peer still sends until it closes its half.
type muxConn struct {
	*yamux.Stream
	once sync.Once
}

// maxFrameBody keeps a data frame, header included, within one 32 KiB
// write: the guest's virtio-serial driver takes at most 32 KiB per
// write(2), so a larger frame would cost a second system call (and VM
// exit) for its last bytes.
const maxFrameBody = 32<<10 - yamuxHeaderLen

func (c *muxConn) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), maxFrameBody)]
		m, err := c.Stream.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		b = b[m:]
	}
	return n, nil
}

func (c *muxConn) CloseWrite() error { return c.Stream.Close() }

func (c *muxConn) Close() error {
	c.once.Do(func() {
		c.Stream.Close()
		go io.Copy(io.Discard, c.Stream)
	})
	return nil
}

func (c *muxConn) Read(b []byte) (int, error) {
	n, err := c.Stream.Read(b)
	if errors.Is(err, yamux.ErrStreamClosed) {
		err = io.EOF
	}
	return n, err
}
