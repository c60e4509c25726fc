package client

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
	docker "github.com/moby/moby/client"
)

// TestNotRunning: with no daemon on the socket (absent, or a stale socket
// file nobody serves), Docker's calls and Berth's own fail with an error
// that is ErrNotRunning and errdefs.ErrUnavailable and names the socket.
func TestNotRunning(t *testing.T) {
	dir, err := os.MkdirTemp("", "bc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	absent := filepath.Join(dir, "absent.sock")
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	ctx := context.Background()
	for _, sock := range []string{absent, stale} {
		c, err := New(sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		calls := map[string]error{}
		_, calls["ContainerList"] = c.ContainerList(ctx, docker.ContainerListOptions{})
		_, calls["ContainerAttach"] = c.ContainerAttach(ctx, "x", docker.ContainerAttachOptions{Stream: true})
		_, calls["Status"] = c.Status(ctx)
		calls["UnpackImage"] = c.UnpackImage(ctx, "img", "/tmp/x.ext4", 0)
		for name, err := range calls {
			nr := NotRunning(err)
			if !errors.Is(err, ErrNotRunning) || !errors.Is(err, errdefs.ErrUnavailable) || nr == nil || nr.Socket != sock {
				t.Errorf("%s on %s: %v, want a NotRunningError for the socket", name, filepath.Base(sock), err)
			}
		}
	}
}
