package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/version"
	docker "github.com/moby/moby/client"
)

// newClient is a client of the daemon on h's socket.
func newClient(t *testing.T, h home.Home) *client.Client {
	t.Helper()
	c, err := client.New(h.Socket())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// answers reports whether the daemon answers a ping.
func answers(c *client.Client) bool {
	_, err := c.Ping(context.Background(), docker.PingOptions{})
	return err == nil
}

func testHome(t *testing.T) home.Home {
	t.Helper()
	// A short path: unix socket paths are limited to ~104 bytes.
	dir, err := os.MkdirTemp("", "bh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h, err := home.Resolve(filepath.Join(dir, "home"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestStartServesPrivateSocket(t *testing.T) {
	ctx := context.Background()
	h := testHome(t)
	d, err := Start(ctx, Config{Home: h})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(h.Socket())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a 0600 socket", fi.Mode())
	}
	hi, _ := os.Stat(h.Dir)
	if hi.Mode().Perm() != 0o700 {
		t.Fatalf("home mode %v, want 0700", hi.Mode().Perm())
	}
	st, err := newClient(t, h).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.Home != h.Dir {
		t.Fatalf("status %+v", st)
	}
	// Docker's client negotiates down to the daemon's API version.
	c := newClient(t, h)
	if _, err := c.ContainerList(ctx, docker.ContainerListOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := c.ClientVersion(); got != version.APIVersion {
		t.Fatalf("negotiated API version %s, want the daemon's %s", got, version.APIVersion)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.Socket()); !os.IsNotExist(err) {
		t.Fatalf("socket left after shutdown: %v", err)
	}
	_, err = newClient(t, h).Status(ctx)
	if !errors.Is(err, client.ErrNotRunning) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("after shutdown: %v, want not running", err)
	}
}

func TestSecondDaemonRefusedFirstKeepsServing(t *testing.T) {
	ctx := context.Background()
	h := testHome(t)
	d, err := Start(ctx, Config{Home: h})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(ctx)
	_, err = Start(ctx, Config{Home: h})
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "another Berth daemon") {
		t.Fatalf("second daemon: %v", err)
	}
	var locked *LockedError
	if !errors.As(err, &locked) || locked.PID != os.Getpid() || locked.Home != h.Dir {
		t.Fatalf("second daemon: %#v, want a LockedError naming pid %d and %s", locked, os.Getpid(), h.Dir)
	}
	if _, err := newClient(t, h).Ping(ctx, docker.PingOptions{}); err != nil {
		t.Fatalf("first daemon stopped answering: %v", err)
	}
}

func TestStaleSocketRemoved(t *testing.T) {
	ctx := context.Background()
	h := testHome(t)
	if err := h.Ensure(); err != nil {
		t.Fatal(err)
	}
	// A socket file nobody serves, as a daemon killed with SIGKILL leaves.
	ln, err := net.Listen("unix", h.Socket())
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(h.Socket()); err != nil {
		t.Fatalf("stale socket not in place: %v", err)
	}
	d, err := Start(ctx, Config{Home: h})
	if err != nil {
		t.Fatalf("start over a stale socket: %v", err)
	}
	defer d.Shutdown(ctx)
	if _, err := newClient(t, h).Ping(ctx, docker.PingOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	h := testHome(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Config{Home: h}) }()
	c := newClient(t, h)
	deadline := time.Now().Add(10 * time.Second)
	for !answers(c) {
		if time.Now().After(deadline) {
			t.Fatal("daemon never answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	b, err := os.ReadFile(h.LogFile())
	if err != nil || !strings.Contains(string(b), "Berth daemon stopped") {
		t.Fatalf("daemon.log: %v %q", err, b)
	}
}

// TestShutdownEndsStreamingRequests: a request that streams until told to
// stop (here GET /events) does not hold the daemon's shutdown.
func TestShutdownEndsStreamingRequests(t *testing.T) {
	ctx := context.Background()
	h := testHome(t)
	d, err := Start(ctx, Config{Home: h})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("unix", h.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /v1.47/events HTTP/1.1\r\nHost: berth\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "HTTP/1.1 200" {
		t.Fatalf("events stream: %q %v", buf, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := d.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown with a stream open: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("shutdown took %v", el)
	}
}
