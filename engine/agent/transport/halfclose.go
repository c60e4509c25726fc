package transport

import (
	"errors"
	"net"
)

// CloseWriter is a connection that can end its outgoing half and keep
// reading: *net.UnixConn, *net.TCPConn, Linux vsock connections and the
// streams of the yamux transport all are; Virtualization.framework's vsock
// connections are not, which is why the agent's stdio never half-closes
// (stdin's EOF is the protocol's CloseStdin).
type CloseWriter interface {
	CloseWrite() error
}

// CloseWrite half-closes c when it can, and closes it fully when it
// cannot, so that the peer reads EOF either way.
func CloseWrite(c net.Conn) error {
	if cw, ok := c.(CloseWriter); ok {
		err := cw.CloseWrite()
		if err == nil || errors.Is(err, net.ErrClosed) {
			return err
		}
	}
	return c.Close()
}
