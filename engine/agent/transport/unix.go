package transport

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// Unix carries connections by port over unix sockets in one directory,
// DIR/<port>.sock: the guest side listens there, the host side dials. It
// is for tests and for running guestinit's agent without a VM; it
// implements both Dialer and Listener. Unix sockets can half-close
// (CloseWrite) but vz's vsock cannot, so the agent's stdio never does;
// transporttest.NoHalfClose wraps this transport without CloseWrite.
type Unix struct {
	dir string
}

// NewUnix returns a Unix transport rooted at dir, which must exist. Keep
// dir short: socket paths are limited to 104 bytes on macOS and 108 on
// Linux.
func NewUnix(dir string) *Unix { return &Unix{dir: dir} }

// Path is the socket path for port.
func (u *Unix) Path(port uint32) string {
	return filepath.Join(u.dir, strconv.FormatUint(uint64(port), 10)+".sock")
}

// DialPort connects to the socket for port.
func (u *Unix) DialPort(ctx context.Context, port uint32) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", u.Path(port))
	if err != nil {
		return nil, fmt.Errorf("dial agent port %d: %w", port, err)
	}
	return c, nil
}

// ListenPort listens on the socket for port, replacing a stale socket file
// left by an earlier run.
func (u *Unix) ListenPort(port uint32) (net.Listener, error) {
	p := u.Path(port)
	if _, err := os.Lstat(p); err == nil {
		if c, err := net.Dial("unix", p); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on agent port %d: %s is in use", port, p)
		}
		os.Remove(p)
	}
	l, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("listen on agent port %d: %w", port, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	return l, nil
}
