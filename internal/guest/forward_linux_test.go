package guest

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
)

// TestForwardUnix: connections to a forwarded port reach a unix socket
// in the rootfs, one socket connection each, made when the host
// connects (the socket may come later); bad requests are refused.
func TestForwardUnix(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	const port = 0x2000
	if err := e.client.ForwardUnix(ctx, port, "/run/echo.sock"); err != nil {
		t.Fatal(err)
	}
	// Before the socket exists, a connection ends at once.
	c, err := e.tr.DialPort(ctx, port)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("a connection with no socket behind it: %v, want EOF", err)
	}
	c.Close()

	if err := os.MkdirAll(filepath.Join(e.rootfs, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(e.rootfs, "run", "echo.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	for i := range 2 {
		c, err := e.tr.DialPort(ctx, port)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("hello through the forward")
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
			t.Errorf("connection %d: echoed %q, %v", i, got, err)
		}
		c.Close()
	}

	if err := e.client.ForwardUnix(ctx, port, "/run/other.sock"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("forwarding a port twice: %v, want already exists", err)
	}
	if err := e.client.ForwardUnix(ctx, port+1, "run/echo.sock"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("a relative socket path: %v, want invalid argument", err)
	}
}
