package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/events"
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
