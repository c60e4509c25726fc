package guest

import (
	"errors"
	"io"
	"log"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/share/portsync"
)

// TestPortRelay runs a share's port relay on a socket pair standing in
// for the virtio port (the relay only reads, writes and polls it): what
// the host sends before its echo of the token is dropped, the rest
// reaches the kernel's end and back, and Close returns with the port
// closed (so the next share can open it) while the relay sits idle in
// poll, which a read(2) on a virtio port would not allow.
func TestPortRelay(t *testing.T) {
	ports, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	host := os.NewFile(uintptr(ports[1]), "host end")
	defer host.Close()
	token, err := portsync.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{logger: log.New(io.Discard, "", 0)}
	r, kfd, err := newPortRelay(ports[0])
	if err != nil {
		t.Fatal(err)
	}
	kernel := os.NewFile(uintptr(kfd), "kernel end")
	defer kernel.Close()
	go r.fromHost(s, "t", token)
	go r.toHost()
	if _, err := host.Write(append([]byte("Rclunk left by the last share"), token...)); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Write([]byte("Rversion")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("Rversion"))
	if _, err := io.ReadFull(kernel, got); err != nil || string(got) != "Rversion" {
		t.Fatalf("the kernel's end got %q, %v; want only what followed the token", got, err)
	}
	if _, err := kernel.Write([]byte("Tattach")); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, len("Tattach"))
	if _, err := io.ReadFull(host, got); err != nil || string(got) != "Tattach" {
		t.Fatalf("the host got %q, %v", got, err)
	}
	closed := make(chan struct{})
	go func() { r.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the idle relay")
	}
	host.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(host); err != nil || len(b) != 0 {
		t.Errorf("after Close the port should be closed: read %q, %v", b, err)
	}
	if n, err := kernel.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("after Close the kernel's end should see the end: %d, %v", n, err)
	}
}

// TestPortRelayNoEcho: waiting for a host that never echoes the token
// ends at the reader's deadline (shareSyncTimeout in the relay, shortened
// here) rather than relaying an earlier share's bytes.
func TestPortRelayNoEcho(t *testing.T) {
	ports, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	host := os.NewFile(uintptr(ports[1]), "host end")
	defer host.Close()
	r, kfd, err := newPortRelay(ports[0])
	if err != nil {
		t.Fatal(err)
	}
	kernel := os.NewFile(uintptr(kfd), "kernel end")
	defer kernel.Close()
	pr := &pollReader{r: r, deadline: time.Now().Add(200 * time.Millisecond)}
	host.Write([]byte("stale bytes, no token"))
	token, _ := portsync.NewToken()
	if _, err := portsync.Skip(pr, token); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("no echo: %v, want a deadline error", err)
	}
	r.done()
	r.done()
	<-r.finished
}
