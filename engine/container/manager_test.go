package container

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/rootfs"
	"github.com/berthvm/berth/internal/testenv"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// fixture is a manager over a real image store (fed from a real
// registry) and a real rootfs cache, without a VM backend: these tests
// cover what needs no VM; the end-to-end tests boot real ones.
type fixture struct {
	m      *Manager
	dir    string
	ref    string
	images *image.Store
	cache  *rootfs.Cache
	bus    *events.Bus
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	reg := testenv.StartRegistry(t)
	img := testenv.BusyboxImage(t, nil)
	f := &fixture{dir: t.TempDir(), bus: events.NewBus()}
	f.ref = reg.Push(t, "test/busybox", "1", img)
	var err error
	if f.images, err = image.Open(filepath.Join(f.dir, "images")); err != nil {
		t.Fatal(err)
	}
	if f.cache, err = rootfs.NewCache(filepath.Join(f.dir, "rootfs")); err != nil {
		t.Fatal(err)
	}
	f.m = f.open(t)
	return f
}

func (f *fixture) open(t *testing.T) *Manager {
	t.Helper()
	m, err := NewManager(context.Background(), Config{
		Dir: filepath.Join(f.dir, "containers"), Images: f.images, Rootfs: f.cache, Events: f.bus,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCreateAppliesImageDefaultsAndPulls(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Pull policy never: a missing image is Docker's not-found.
	_, err := f.m.Create(ctx, CreateRequest{Config: &mobycontainer.Config{Image: f.ref}, Pull: PullNever})
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "No such image") {
		t.Fatalf("create with pull never: %v", err)
	}
	past, events := f.bus.Subscribe(ctx, time.Time{}, nil)
	_ = past
	c, err := f.m.Create(ctx, CreateRequest{
		Name:   "web",
		Config: &mobycontainer.Config{Image: f.ref, Env: []string{"A=1", "PATH=/bin"}, Labels: map[string]string{"app": "x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := c.Snapshot()
	if len(s.Spec.ID) != 64 || s.Spec.Name != "web" || s.State.Status != mobycontainer.StateCreated {
		t.Fatalf("snapshot: %+v", s)
	}
	if s.Spec.Path != "sh" || len(s.Spec.Args) != 0 {
		t.Fatalf("image Cmd not applied: %q %q", s.Spec.Path, s.Spec.Args)
	}
	if strings.Join(s.Spec.Config.Env, ",") != "PATH=/bin,A=1" {
		t.Fatalf("env merge: %v", s.Spec.Config.Env)
	}
	if s.Spec.Config.Labels["app"] != "x" || s.Spec.Config.Labels["dev.berthvm.test"] != "busybox" {
		t.Fatalf("labels: %v", s.Spec.Config.Labels)
	}
	if s.Spec.HostConfig.LogConfig.Type != "json-file" {
		t.Fatalf("log type %q", s.Spec.HostConfig.LogConfig.Type)
	}
	if fi, err := os.Stat(filepath.Join(s.Dir, "rootfs.ext4")); err != nil || fi.Size() == 0 {
		t.Fatalf("rootfs clone: %v", err)
	}
	select {
	case ev := <-events:
		if ev.Action != "create" || ev.Actor.ID != s.Spec.ID || ev.Actor.Attributes["app"] != "x" || ev.Actor.Attributes["name"] != "web" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(time.Second):
		t.Fatal("no create event")
	}

	// Entrypoint given: the image's Cmd is dropped.
	c2, err := f.m.Create(ctx, CreateRequest{Config: &mobycontainer.Config{Image: f.ref, Entrypoint: []string{"echo"}}})
	if err != nil {
		t.Fatal(err)
	}
	if s2 := c2.Snapshot(); s2.Spec.Path != "echo" || len(s2.Spec.Args) != 0 || s2.Spec.Name == "" {
		t.Fatalf("entrypoint override: %+v", s2.Spec)
	}

	// Names are unique.
	_, err = f.m.Create(ctx, CreateRequest{Name: "web", Config: &mobycontainer.Config{Image: f.ref}})
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), `The container name "/web" is already in use`) {
		t.Fatalf("name conflict: %v", err)
	}
	// Invalid values are clear.
	for _, req := range []CreateRequest{
		{Name: "bad name!", Config: &mobycontainer.Config{Image: f.ref}},
		{Config: &mobycontainer.Config{Image: f.ref}, HostConfig: &mobycontainer.HostConfig{Resources: mobycontainer.Resources{Memory: 1 << 20}}},
		{Config: &mobycontainer.Config{Image: "UPPER/case"}},
	} {
		if _, err := f.m.Create(ctx, req); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("create %+v: %v, want invalid argument", req.Name, err)
		}
	}
	// A user the image does not have fails the create, with Docker's words.
	_, err = f.m.Create(ctx, CreateRequest{Config: &mobycontainer.Config{Image: f.ref, User: "nobody-here"}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "unable to find user nobody-here") {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := f.m.Create(ctx, CreateRequest{Config: &mobycontainer.Config{Image: f.ref, User: "berth"}}); err != nil {
		t.Fatalf("known user: %v", err)
	}
	// The image is in use now.
	if !f.m.InUse(s.Spec.ImageID) {
		t.Fatal("image not reported in use")
	}
}

func TestGetListRenameRemove(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, err := f.m.Create(ctx, CreateRequest{Name: "alpha", Config: &mobycontainer.Config{Image: f.ref, Labels: map[string]string{"tier": "db"}}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	b, err := f.m.Create(ctx, CreateRequest{Name: "beta", Config: &mobycontainer.Config{Image: f.ref}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{a.ID(), a.ID()[:10], "alpha", "/alpha"} {
		got, err := f.m.Get(ref)
		if err != nil || got != a {
			t.Fatalf("Get(%q) = %v, %v", ref, got, err)
		}
	}
	if _, err := f.m.Get("nosuch"); !errors.Is(err, errdefs.ErrNotFound) || err.Error() != "No such container: nosuch" {
		t.Fatalf("Get missing: %v", err)
	}
	if l := f.m.List(false, nil); len(l) != 0 {
		t.Fatalf("running list: %d", len(l))
	}
	l := f.m.List(true, nil)
	if len(l) != 2 || l[0].Spec.ID != b.ID() {
		t.Fatalf("list all, newest first: %v", l)
	}
	l = f.m.List(true, func(s Snapshot) bool { return s.Spec.Config.Labels["tier"] == "db" })
	if len(l) != 1 || l[0].Spec.Name != "alpha" {
		t.Fatalf("filtered: %v", l)
	}
	if err := f.m.Rename("alpha", "gamma"); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Rename("beta", "gamma"); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("rename onto a taken name: %v", err)
	}
	if _, err := f.m.Get("gamma"); err != nil {
		t.Fatal(err)
	}
	// Start without a backend: a clear error, and the container stays.
	err = f.m.Start(ctx, "gamma")
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("start without VM backend: %v", err)
	}
	if s := a.Snapshot(); s.State.Status != mobycontainer.StateExited || s.State.Error == "" {
		t.Fatalf("state after failed start: %+v", s.State)
	}
	// Removal deletes the directory and frees the name.
	dir := a.Snapshot().Dir
	if err := f.m.Remove(ctx, "gamma", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory left: %v", err)
	}
	if _, err := f.m.Wait(ctx, b.ID(), WaitNotRunning); err != nil {
		t.Fatalf("wait on a created container returns at once: %v", err)
	}
	if _, err := f.m.Create(ctx, CreateRequest{Name: "gamma", Config: &mobycontainer.Config{Image: f.ref}}); err != nil {
		t.Fatalf("name not freed: %v", err)
	}
	ids, err := f.m.Prune(ctx, nil)
	if err != nil || len(ids) != 2 {
		t.Fatalf("prune: %v %v", ids, err)
	}
}

// TestRecoverAfterCrash: a container recorded as running by an engine
// that died comes back exited with the reason, and so does one whose
// start was under way (a failed start); an --rm one is cleaned up; a
// half-created directory is removed.
func TestRecoverAfterCrash(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	keep, err := f.m.Create(ctx, CreateRequest{Name: "keep", Config: &mobycontainer.Config{Image: f.ref}})
	if err != nil {
		t.Fatal(err)
	}
	rm, err := f.m.Create(ctx, CreateRequest{Name: "rm", Config: &mobycontainer.Config{Image: f.ref}, HostConfig: &mobycontainer.HostConfig{AutoRemove: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Container{keep, rm} {
		c.mu.Lock()
		c.state = State{Status: mobycontainer.StateRunning, Pid: 999999, StartedAt: time.Now()}
		if err := c.saveStateLocked(); err != nil {
			t.Fatal(err)
		}
		c.mu.Unlock()
	}
	starting, err := f.m.Create(ctx, CreateRequest{Name: "starting", Config: &mobycontainer.Config{Image: f.ref}})
	if err != nil {
		t.Fatal(err)
	}
	starting.mu.Lock()
	starting.state.Starting = true // as startWith saves it before booting
	if err := starting.saveStateLocked(); err != nil {
		t.Fatal(err)
	}
	starting.mu.Unlock()
	half := filepath.Join(f.dir, "containers", strings.Repeat("ab", 32))
	if err := os.MkdirAll(half, 0o700); err != nil {
		t.Fatal(err)
	}
	m2 := f.open(t)
	c, err := m2.Get("keep")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Snapshot()
	if s.State.Status != mobycontainer.StateExited || !strings.Contains(s.State.Error, "engine stopped") || s.State.ExitCode != 137 {
		t.Fatalf("recovered state: %+v", s.State)
	}
	c, err = m2.Get("starting")
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Snapshot().State; s.Status != mobycontainer.StateExited || s.Starting || s.ExitCode != startFailedCode ||
		s.Error != "Berth's engine stopped while the container was starting; its VM was stopped" {
		t.Fatalf("recovered state of a container killed while starting: %+v", s)
	}
	if _, err := m2.Get("rm"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("--rm container not cleaned up: %v", err)
	}
	if _, err := os.Stat(half); !os.IsNotExist(err) {
		t.Fatal("half-created directory left")
	}
}

func TestLogFileRotationAndTail(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "container.log")
	l, err := openLogFile(p, 4096)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		stream := "stdout"
		if i%2 == 1 {
			stream = "stderr"
		}
		if err := l.Write(stream, []byte(strings.Repeat("x", 10)+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	fi, err := os.Stat(p)
	if err != nil || fi.Size() > 4096 {
		t.Fatalf("log not capped: %v %d", err, fi.Size())
	}
	var got []LogEntry
	err = readLogs(context.Background(), p, LogOptions{Stdout: true, Stderr: false, Tail: 3}, func() bool { return false }, func() <-chan struct{} { return closedChan() }, func(e LogEntry) error {
		got = append(got, e)
		return nil
	})
	if err != nil || len(got) != 3 || got[0].Stream != "stdout" || got[2].Log != "xxxxxxxxxx\n" {
		t.Fatalf("tail: %v %+v", err, got)
	}
	// A chunk with several lines and a partial one.
	l2, _ := openLogFile(filepath.Join(dir, "b.log"), 0)
	l2.Write("stdout", []byte("a\nb\nc"))
	l2.Close()
	got = nil
	readLogs(context.Background(), filepath.Join(dir, "b.log"), LogOptions{Stdout: true, Tail: -1}, func() bool { return false }, func() <-chan struct{} { return closedChan() }, func(e LogEntry) error {
		got = append(got, e)
		return nil
	})
	if len(got) != 3 || got[0].Log != "a\n" || got[2].Log != "c" {
		t.Fatalf("lines: %+v", got)
	}
}
