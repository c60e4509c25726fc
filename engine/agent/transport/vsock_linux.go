package transport

import (
	"context"
	"fmt"
	"net"

	"github.com/mdlayher/vsock"
)

// Vsock is the guest end of the AF_VSOCK transport: ListenPort listens on
// a vsock port of the guest (any CID the guest owns).
type Vsock struct{}

// ListenPort listens on vsock port.
func (Vsock) ListenPort(port uint32) (net.Listener, error) {
	l, err := vsock.Listen(port, nil)
	if err != nil {
		return nil, fmt.Errorf("listen on vsock port %d: %w", port, err)
	}
	return l, nil
}

// VsockDialer is the host end of the AF_VSOCK transport on Linux (QEMU
// with vhost-vsock): it dials ports of the guest with context ID CID.
// Virtualization.framework hands out net.Conns itself and needs no dialer
// from this package.
type VsockDialer struct {
	CID uint32
}

// DialPort connects to port in the guest.
func (d VsockDialer) DialPort(ctx context.Context, port uint32) (net.Conn, error) {
	c, err := vsock.DialContext(ctx, d.CID, port, nil)
	if err != nil {
		return nil, fmt.Errorf("dial vsock cid %d port %d: %w", d.CID, port, err)
	}
	return c, nil
}
