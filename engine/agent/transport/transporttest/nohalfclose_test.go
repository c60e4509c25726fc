package transporttest

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent/transport"
)

// TestNoHalfClose: neither end of a connection can half-close, so
// transport.CloseWrite closes it fully (the peer's writes fail), as on vz.
func TestNoHalfClose(t *testing.T) {
	dir, err := os.MkdirTemp("", "th")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	tr := NewNoHalfClose(transport.NewUnix(dir))
	l, err := tr.ListenPort(7)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	host, err := tr.DialPort(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	guest, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	for name, c := range map[string]any{"dialed": host, "accepted": guest} {
		if _, ok := c.(transport.CloseWriter); ok {
			t.Errorf("%s connection has CloseWrite", name)
		}
	}
	if err := transport.CloseWrite(host); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(guest); err != nil || len(b) != 0 {
		t.Errorf("guest read %q, %v after the host's CloseWrite; want EOF", b, err)
	}
	// The host's end is gone, not half-open: what the guest writes
	// cannot be read there.
	if _, err := host.Read(make([]byte, 1)); err == nil {
		t.Error("host read after its CloseWrite succeeded; want the connection closed")
	}
}
