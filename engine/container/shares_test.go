package container

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/engine/share/portsync"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobyevents "github.com/moby/moby/api/types/events"
)

func TestDefaultShareTarget(t *testing.T) {
	used := map[string]bool{"/mnt/src": true, "/mnt/src-2": true}
	if got := defaultShareTarget("/Users/me/src", used); got != "/mnt/src-3" {
		t.Errorf("de-duplicated target = %s, want /mnt/src-3", got)
	}
	if got := defaultShareTarget("/Users/me/docs", used); got != "/mnt/docs" {
		t.Errorf("target = %s, want /mnt/docs", got)
	}
}

func TestCheckShareSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if got, err := checkShareSource(link); err != nil || got != real {
		t.Errorf("a link to a folder resolves to %q, %v; want %s", got, err, real)
	}
	for _, c := range []struct{ in, msg string }{
		{file, "it is a file, not a folder"},
		{filepath.Join(dir, "missing"), "no such folder"},
		{"relative", "absolute path"},
	} {
		_, err := checkShareSource(c.in)
		if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("checkShareSource(%s) = %v, want an invalid argument saying %q", c.in, err, c.msg)
		}
	}
	for _, bad := range []string{"rel/x", "/"} {
		if _, err := checkShareTarget(bad); err == nil {
			t.Errorf("target %q accepted", bad)
		}
	}
	if got, _ := checkShareTarget("/a/../b/"); got != "/b" {
		t.Errorf("target cleaned to %q", got)
	}
}

// TestShareEvents: sharing a folder with a stopped container records it
// and publishes share_add; removing it publishes share_rm, each with
// the share's source, target and readOnly, so that the menu and other
// event followers learn of it without polling.
func TestShareEvents(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, err := f.m.Create(ctx, CreateRequest{Name: "sharer", Config: &mobycontainer.Config{Image: f.ref}})
	if err != nil {
		t.Fatal(err)
	}
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	_, evs := f.bus.Subscribe(sub, time.Now(), func(m events.Message) bool { return m.Actor.ID == c.ID() })
	dir := t.TempDir()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := f.m.AddShare(ctx, "sharer", RunShare{Source: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"source": real, "target": "/mnt/" + filepath.Base(real), "readOnly": "true", "name": "sharer", "image": f.ref}
	next := func(action mobyevents.Action) {
		t.Helper()
		select {
		case m := <-evs:
			if m.Type != mobyevents.ContainerEventType || m.Action != action {
				t.Fatalf("event %s %s, want container %s", m.Type, m.Action, action)
			}
			for k, v := range want {
				if m.Actor.Attributes[k] != v {
					t.Errorf("%s: attribute %s = %q, want %q", action, k, m.Actor.Attributes[k], v)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event", action)
		}
	}
	next(ActionShareAdd)
	if _, err := f.m.AddShare(ctx, "sharer", RunShare{Source: dir}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("sharing %s twice: %v, want a conflict", dir, err)
	}
	if err := f.m.RemoveShare(ctx, "sharer", sh.Target); err != nil {
		t.Fatal(err)
	}
	next(ActionShareRemove)
	if err := f.m.RemoveShare(ctx, "sharer", sh.Target); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("removing a share twice: %v, want not found", err)
	}
	select {
	case m := <-evs:
		t.Errorf("a refused share published %s", m.Action)
	default:
	}
}

// TestShareLimit: a container takes MaxRunShares run-time shares; the
// next is refused with a conflict naming the limit and what to do, and
// removing one makes room again.
func TestShareLimit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.m.Create(ctx, CreateRequest{Name: "many", Config: &mobycontainer.Config{Image: f.ref}}); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	dir := func(i int) string {
		d := filepath.Join(base, "d"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	var first RunShare
	for i := range MaxRunShares {
		s, err := f.m.AddShare(ctx, "many", RunShare{Source: dir(i)})
		if err != nil {
			t.Fatalf("share %d of %d: %v", i+1, MaxRunShares, err)
		}
		if i == 0 {
			first = s
		}
	}
	_, err := f.m.AddShare(ctx, "many", RunShare{Source: dir(MaxRunShares)})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), strconv.Itoa(MaxRunShares)+" folders") || !strings.Contains(err.Error(), "berth share rm many") {
		t.Fatalf("share %d: %v, want a conflict naming the limit and berth share rm", MaxRunShares+1, err)
	}
	if err := f.m.RemoveShare(ctx, "many", first.Target); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.AddShare(ctx, "many", RunShare{Source: dir(MaxRunShares)}); err != nil {
		t.Errorf("a share after removing one: %v", err)
	}
}

// TestSharePorts: a run hands out its spare ports lowest first, gives a
// released one out again, and never one retired after a failure (whose
// host end it closes).
func TestSharePorts(t *testing.T) {
	var ls liveShares
	for want := range 3 {
		if got := ls.takePort(3); got != want {
			t.Fatalf("takePort = %d, want %d", got, want)
		}
	}
	if got := ls.takePort(3); got != -1 {
		t.Fatalf("takePort with every port busy = %d, want -1", got)
	}
	keep, _ := net.Pipe()
	ls.releasePort(1, keep, true)
	if err := keep.SetDeadline(time.Time{}); err != nil {
		t.Errorf("a port released for reuse was closed: %v", err)
	}
	if got := ls.takePort(3); got != 1 {
		t.Fatalf("takePort after releasing port 1 = %d, want 1", got)
	}
	gone, _ := net.Pipe()
	ls.releasePort(0, gone, false)
	if err := gone.SetDeadline(time.Time{}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("a retired port's host end is still open: %v", err)
	}
	if got := ls.takePort(3); got != -1 {
		t.Errorf("takePort gave out a retired port: %d", got)
	}
}

// TestPortSession: a share's session on a spare port drops the bytes
// before the guest's token (an earlier share's leftovers), echoes the
// token, then reads the new stream; its Close stops it without closing
// the port, so the next session on that port starts the same way.
func TestPortSession(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "port")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	host, guest := conn(fds[0]), conn(fds[1])
	for round, stale := range []string{"", "Tclunk from the last share"} {
		token, err := portsync.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		ps := &portSession{conn: host}
		started := make(chan error, 1)
		go func() { started <- ps.start(token) }()
		if _, err := guest.Write(append(append([]byte(stale), token...), "Tversion"...)); err != nil {
			t.Fatal(err)
		}
		if err := <-started; err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		echo := make([]byte, len(token))
		if _, err := io.ReadFull(guest, echo); err != nil || string(echo) != string(token) {
			t.Fatalf("round %d: the guest got %q, %v; want the token back", round, echo, err)
		}
		got := make([]byte, len("Tversion"))
		if _, err := io.ReadFull(ps, got); err != nil || string(got) != "Tversion" {
			t.Fatalf("round %d: the session read %q, %v", round, got, err)
		}
		done := make(chan error, 1)
		go func() { _, err := ps.Read(make([]byte, 1)); done <- err }()
		ps.Close()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("round %d: a read after Close succeeded", round)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close did not end a blocked read", round)
		}
		if _, err := ps.Write([]byte("Rclunk")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("round %d: a write after Close: %v", round, err)
		}
	}
}
