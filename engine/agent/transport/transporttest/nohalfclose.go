// Package transporttest has agent transports for tests.
package transporttest

import (
	"context"
	"net"

	"github.com/berthvm/berth/engine/agent/transport"
)

// NoHalfClose is a test transport whose connections cannot half-close:
// they have no CloseWrite method, as Virtualization.framework's vsock
// connections (vz.VirtioSocketConnection) have none, so
// transport.CloseWrite on one closes it fully, as it does on a Mac. It
// wraps a real transport (the unix one in tests), on both sides: as a
// Dialer for the host and a Listener for the guest. Stdio code that
// works over it does not depend on half-close.
type NoHalfClose struct {
	Dialer   transport.Dialer
	Listener transport.Listener
}

// NewNoHalfClose wraps the unix transport u, both ends.
func NewNoHalfClose(u *transport.Unix) NoHalfClose {
	return NoHalfClose{Dialer: u, Listener: u}
}

// DialPort dials port through the wrapped Dialer.
func (n NoHalfClose) DialPort(ctx context.Context, port uint32) (net.Conn, error) {
	c, err := n.Dialer.DialPort(ctx, port)
	if err != nil {
		return nil, err
	}
	return noHalfCloseConn{c}, nil
}

// ListenPort listens on port through the wrapped Listener.
func (n NoHalfClose) ListenPort(port uint32) (net.Listener, error) {
	l, err := n.Listener.ListenPort(port)
	if err != nil {
		return nil, err
	}
	return noHalfCloseListener{l}, nil
}

// noHalfCloseConn hides every method of the connection but net.Conn's.
type noHalfCloseConn struct{ net.Conn }

type noHalfCloseListener struct{ net.Listener }

func (l noHalfCloseListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return noHalfCloseConn{c}, nil
}
