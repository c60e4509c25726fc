package menu

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/app/internal/human"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/internal/testenv"
	cerrdefs "github.com/containerd/errdefs"
	mobycontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	docker "github.com/moby/moby/client"
)

// TestStateFollowsEngine drives a State and Dispatcher against a real
// engine (in-process, as the app hosts it; no VM is booted): the engine
// absent, started, pulling good and bad references, containers created
// and removed, the engine shut down and started again.
func TestStateFollowsEngine(t *testing.T) {
	h := engineHome(t)
	st, d, cl := menuFor(t, h, WithLogPath(h.LogFile()))
	ctx := context.Background()

	s := waitFor(t, st, "not running", func(s Snapshot) bool { return s.Engine.State == EngineNotRunning })
	if want := "nothing answers on " + h.Socket(); s.Engine.Reason != want {
		t.Errorf("reason %q, want %q", s.Engine.Reason, want)
	}
	m := Build(s, time.Now())
	mustItem(t, m, "Berth is not running: nothing answers on "+h.Socket())
	mustItem(t, m, "Open Log").enabled(t)
	if r, err := d.Do(ctx, Action{Kind: OpenLog}); err != nil || r.OpenPath != h.LogFile() {
		t.Errorf("open log: %+v, %v", r, err)
	}
	if _, err := d.Do(ctx, Action{Kind: StartContainer, Container: "x"}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("start with no engine: %v, want unavailable", err)
	}

	eng := startEngine(t, h)
	s = waitFor(t, st, "running", func(s Snapshot) bool { return s.Engine.State == EngineRunning })
	if s.Engine.Backend == "" || len(s.Containers) != 0 || len(s.Images) != 0 {
		t.Errorf("a fresh engine: %+v", s)
	}

	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "menu/busybox", "1", testenv.BusyboxImage(t, nil))
	r, err := d.Do(ctx, Action{Kind: PullImage, Ref: ref})
	if err != nil || r.Message != "Pulled "+ref {
		t.Fatalf("pull: %+v, %v", r, err)
	}
	if n := nextNotice(t, st); n.Title != "Pulled "+ref || n.Err {
		t.Errorf("notice %+v", n)
	}
	s = waitFor(t, st, "the pulled image", func(s Snapshot) bool { return hasImage(s, ref) })
	if len(s.Pulls) != 0 {
		t.Errorf("a finished pull is still shown: %+v", s.Pulls)
	}
	if len(s.Images) != 1 || s.Images[0].Size < 1_000_000 {
		t.Fatalf("images %+v, want the busybox image (over 1 MB)", s.Images)
	}
	mustItem(t, Build(s, time.Now()), ref+" — "+human.Bytes(s.Images[0].Size), "Run Shell").enabled(t)

	bad := reg.Host + "/no/such:1"
	if _, err := d.Do(ctx, Action{Kind: PullImage, Ref: bad}); err == nil || !strings.Contains(err.Error(), "pull "+bad) {
		t.Fatalf("pull of %s: %v, want an error naming it", bad, err)
	}
	if n := nextNotice(t, st); n.Title != "Pull of "+bad+" failed" || !n.Err || n.Body == "" {
		t.Errorf("notice %+v", n)
	}
	s = st.Snapshot()
	if len(s.Pulls) != 1 || s.Pulls[0].Subject != bad || s.Pulls[0].Err == "" {
		t.Fatalf("failed pull: %+v", s.Pulls)
	}
	failed := mustItem(t, Build(s, time.Now()), "Pull of "+bad+" failed: "+s.Pulls[0].Err, "Dismiss")
	t.Logf("a bad pull shows: Pull of %s failed: %s", bad, s.Pulls[0].Err)
	if _, err := d.Do(ctx, failed.Action); err != nil {
		t.Fatal(err)
	}
	if s := st.Snapshot(); len(s.Pulls) != 0 {
		t.Errorf("dismissed pull still shown: %+v", s.Pulls)
	}

	// A container created (not started: no VM) shows up from its event.
	if _, err := cl.ContainerCreate(ctx, docker.ContainerCreateOptions{Name: "idle", Config: &mobycontainer.Config{Image: ref}}); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, st, "the created container", func(s Snapshot) bool { _, ok := containerNamed(s, "idle"); return ok })
	idle, _ := containerNamed(s, "idle")
	if idle.State != "created" || idle.Image != ref || idle.Created.IsZero() || idle.IP != "" || idle.ID == "" {
		t.Errorf("created container: %+v", idle)
	}
	// Its -v mounts are listed with its shares, made at create time.
	src := t.TempDir()
	if _, err := cl.ContainerCreate(ctx, docker.ContainerCreateOptions{Name: "bound", Config: &mobycontainer.Config{Image: ref},
		HostConfig: &mobycontainer.HostConfig{Binds: []string{src + ":/src:ro", "menucache:/cache"}}}); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, st, "the container with -v", func(s Snapshot) bool { _, ok := containerNamed(s, "bound"); return ok })
	bound, _ := containerNamed(s, "bound")
	if len(bound.Shares) != 2 || bound.Shares[0] != (Share{HostPath: src, ContainerPath: "/src", ReadOnly: true, AtCreate: true}) ||
		bound.Shares[1].Volume != "menucache" || bound.Shares[1].ContainerPath != "/cache" || !bound.Shares[1].AtCreate {
		t.Errorf("create-time shares %+v", bound.Shares)
	}
	mustItem(t, Build(s, time.Now()), "bound — "+ref, "Shared Folders", "volume menucache → /cache", "Stop Sharing").
		disabledBecause(t, "Shared when bound was created (-v or --mount): it lasts as long as the container.")
	if _, err := d.Do(ctx, Action{Kind: RemoveContainer, Container: "bound", Name: "bound"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "bound removed", func(s Snapshot) bool { _, ok := containerNamed(s, "bound"); return !ok })
	// A death nobody asked for, with an error code, is a notice; one
	// after a stop (or kill) is not. The events are made here (the
	// container never ran); the State handles them against the engine.
	die := func(code string) events.Message {
		return events.Message{Type: events.ContainerEventType, Action: events.ActionDie, TimeNano: time.Now().UnixNano(),
			Actor: events.Actor{ID: idle.ID, Attributes: map[string]string{"exitCode": code, "name": "idle", "image": ref}}}
	}
	if err := st.handle(ctx, die("1"), nil); err != nil {
		t.Fatal(err)
	}
	if n := nextNotice(t, st); n.Title != "idle exited with code 1" || !n.Err {
		t.Errorf("notice %+v", n)
	}
	for _, m := range []events.Message{
		{Type: events.ContainerEventType, Action: events.ActionKill, Actor: events.Actor{ID: idle.ID}}, die("137"), die("0"),
	} {
		if err := st.handle(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A death replayed to a new connection (from before it) was the
	// last connection's to notice.
	old := die("1")
	old.TimeNano = time.Now().Add(-time.Hour).UnixNano()
	if err := st.handle(ctx, old, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-st.Notices():
		t.Errorf("a killed, clean or replayed exit notified %+v", n)
	default:
	}
	// Share Folder… on a container that is not running: the engine
	// records the share, its share_add event puts it in the model;
	// another client's share (the CLI's) shows up the same way; Stop
	// Sharing and its share_rm event take it out.
	dir := t.TempDir()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err = d.Do(ctx, Action{Kind: ShareFolder, Container: idle.ID, Name: "idle", HostPath: dir})
	if want := "Shared " + real + " with idle at /mnt/" + filepath.Base(real) + " (from its next start)"; err != nil || r.Message != want {
		t.Fatalf("share with a stopped container: %+v, %v; want %q", r, err, want)
	}
	s = waitFor(t, st, "the recorded share", func(s Snapshot) bool { c, _ := containerNamed(s, "idle"); return len(c.Shares) == 1 })
	idleShare := Share{HostPath: real, ContainerPath: "/mnt/" + filepath.Base(real)}
	if c, _ := containerNamed(s, "idle"); c.Shares[0] != idleShare {
		t.Errorf("share in the model %+v, want %+v", c.Shares[0], idleShare)
	}
	if _, err := d.Do(ctx, Action{Kind: ShareFolder, Container: idle.ID, Name: "idle", HostPath: dir}); !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "already shared") {
		t.Errorf("sharing a folder twice: %v, want a conflict saying it is already shared", err)
	}
	if _, err := d.Do(ctx, Action{Kind: ShareFolder, Container: idle.ID, Name: "idle", HostPath: filepath.Join(dir, "gone")}); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "no such folder") {
		t.Errorf("sharing a missing folder: %v, want invalid argument saying there is no such folder", err)
	}
	other := t.TempDir()
	if _, err := cl.AddShare(ctx, "idle", types.Share{Source: other, Target: "/other", ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, st, "the CLI's share", func(s Snapshot) bool { c, _ := containerNamed(s, "idle"); return len(c.Shares) == 2 })
	stop := mustItem(t, Build(s, time.Now()), "idle — "+ref, "Shared Folders", real+" → "+idleShare.ContainerPath, "Stop Sharing").enabled(t)
	if r, err = d.Do(ctx, stop.Action); err != nil || r.Message != "Stopped sharing "+real+" with idle" {
		t.Fatalf("stop sharing: %+v, %v", r, err)
	}
	s = waitFor(t, st, "one share left", func(s Snapshot) bool { c, _ := containerNamed(s, "idle"); return len(c.Shares) == 1 })
	if c, _ := containerNamed(s, "idle"); c.Shares[0].ContainerPath != "/other" || !c.Shares[0].ReadOnly {
		t.Errorf("the share left: %+v", c.Shares[0])
	}

	rm := mustItem(t, Build(s, time.Now()), "idle — "+ref, "Remove…").enabled(t)
	if rm.Action.Force {
		t.Error("removing a container that does not run is forced")
	}
	if _, err := d.Do(ctx, rm.Action); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "the removed container gone", func(s Snapshot) bool { _, ok := containerNamed(s, "idle"); return !ok })

	// The engine goes away and comes back: the State says so, then
	// lists again what the engine kept.
	if _, err := cl.ContainerCreate(ctx, docker.ContainerCreateOptions{Name: "kept", Config: &mobycontainer.Config{Image: ref}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "the second container", func(s Snapshot) bool { _, ok := containerNamed(s, "kept"); return ok })
	eng.stop()
	s = waitFor(t, st, "not running after shutdown", func(s Snapshot) bool { return s.Engine.State == EngineNotRunning })
	if len(s.Containers) != 0 || len(s.Images) != 0 || s.Engine.Reason == "" {
		t.Errorf("after shutdown the model still shows what the engine held, or no reason: %+v", s)
	}
	t.Logf("after shutdown: %q", s.Engine.Reason)
	startEngine(t, h)
	s = waitFor(t, st, "running again with the kept container", func(s Snapshot) bool {
		_, ok := containerNamed(s, "kept")
		return s.Engine.State == EngineRunning && ok && hasImage(s, ref)
	})

	if _, err := d.Do(ctx, Action{Kind: RemoveContainer, Container: "kept", Name: "kept"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Do(ctx, Action{Kind: RemoveImage, Image: ref}); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, st, "no containers and no images", func(s Snapshot) bool { return len(s.Containers) == 0 && len(s.Images) == 0 })
	mustItem(t, Build(s, time.Now()), "No images")
	if _, err := d.Do(ctx, Action{Kind: RemoveContainer, Container: "kept", Name: "kept"}); !cerrdefs.IsNotFound(err) || !strings.Contains(err.Error(), "remove kept") {
		t.Errorf("removing a removed container: %v, want not found, naming it", err)
	}
}

// TestStateHostReports: while the app says its engine is starting, a
// failed connection is not "not running"; a failure it reports is the
// reason shown, until the engine answers.
func TestStateHostReports(t *testing.T) {
	h := engineHome(t)
	st, _, _ := menuFor(t, h)
	st.EngineStarting()
	time.Sleep(300 * time.Millisecond) // several failed connections (backoff ≤ 200 ms)
	if s := st.Snapshot(); s.Engine.State != EngineStarting {
		t.Fatalf("while the host starts the engine: %+v", s.Engine)
	}
	mustItem(t, Build(st.Snapshot(), time.Now()), "Berth is starting…")
	st.EngineFailed(errors.New("no guestinit for linux/arm64"))
	time.Sleep(300 * time.Millisecond)
	if s := st.Snapshot(); s.Engine.State != EngineNotRunning || s.Engine.Reason != "no guestinit for linux/arm64" {
		t.Fatalf("after the host's failure: %+v", s.Engine)
	}
	startEngine(t, h)
	waitFor(t, st, "running", func(s Snapshot) bool { return s.Engine.State == EngineRunning && s.Engine.Reason == "" })
}

// gate is a reverse proxy to a registry that holds blob downloads until
// opened: a pull that stays in progress as long as a test needs.
type gate struct {
	mu   sync.Mutex
	open chan struct{}
	host string
}

func newGate(t *testing.T, registryHost string) *gate {
	g := &gate{open: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: registryHost})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			g.mu.Lock()
			open := g.open
			g.mu.Unlock()
			select {
			case <-open:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { g.release(); srv.Close() })
	g.host = strings.TrimPrefix(srv.URL, "http://")
	return g
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// TestPullProgressAndCancel: a pull in progress is in the model (and
// its menu) until it ends; Cancel Pull ends it cleanly (no failure
// shown); a second pull of the same reference meanwhile is refused;
// Close cancels pulls and refuses new ones.
func TestPullProgressAndCancel(t *testing.T) {
	h := engineHome(t)
	startEngine(t, h)
	st, d, _ := menuFor(t, h)
	ctx := context.Background()
	waitFor(t, st, "running", func(s Snapshot) bool { return s.Engine.State == EngineRunning })
	reg := testenv.StartRegistry(t)
	g := newGate(t, reg.Host)
	reg.Push(t, "menu/slow", "1", testenv.BusyboxImage(t, nil))
	ref := g.host + "/menu/slow:1"

	pulled := make(chan error, 1)
	go func() { _, err := d.Do(ctx, Action{Kind: PullImage, Ref: ref}); pulled <- err }()
	s := waitFor(t, st, "the pull in progress", func(s Snapshot) bool { return len(s.Pulls) == 1 })
	if p := s.Pulls[0]; p.Subject != ref || p.Err != "" {
		t.Fatalf("pull in progress: %+v", p)
	}
	item := mustItem(t, Build(s, time.Now()), Build(s, time.Now()).Items[1].Title, "Cancel Pull")
	if !strings.HasPrefix(Build(s, time.Now()).Items[1].Title, "Pulling "+ref+"…") {
		t.Errorf("pull line %q", Build(s, time.Now()).Items[1].Title)
	}
	if _, err := d.Do(ctx, Action{Kind: PullImage, Ref: ref}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("a second pull of %s: %v, want a conflict", ref, err)
	}
	if _, err := d.Do(ctx, item.Action); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-pulled:
		if err == nil || !strings.Contains(err.Error(), "cancelled") {
			t.Errorf("cancelled pull returned %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the cancelled pull did not return")
	}
	if s := st.Snapshot(); len(s.Pulls) != 0 || hasImage(s, ref) {
		t.Errorf("after cancel: pulls %+v", s.Pulls)
	}
	select {
	case n := <-st.Notices():
		t.Errorf("a cancelled pull notified %+v", n)
	default:
	}
	if _, err := d.Do(ctx, Action{Kind: CancelPull, Ref: ref}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("cancel with no pull: %v, want not found", err)
	}

	// Quitting while a pull runs cancels it.
	go func() { _, err := d.Do(ctx, Action{Kind: PullImage, Ref: ref}); pulled <- err }()
	waitFor(t, st, "the second pull in progress", func(s Snapshot) bool { return len(s.Pulls) == 1 })
	if r, err := d.Do(ctx, Action{Kind: Quit}); err != nil || !r.Quit {
		t.Fatalf("quit: %+v, %v", r, err)
	}
	if err := <-pulled; err == nil {
		t.Error("the pull outlived Quit")
	}
	if _, err := d.Do(ctx, Action{Kind: PullImage, Ref: ref}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("pull after quit: %v, want unavailable", err)
	}
	g.release()
}

// TestManyContainers: a burst of events (containers created and removed
// at once, no VM booted) leaves the model exact, and the menu caps the
// list with "N more… → Open Berth Window".
func TestManyContainers(t *testing.T) {
	h := engineHome(t)
	startEngine(t, h)
	st, _, cl := menuFor(t, h)
	ctx := context.Background()
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "menu/many", "1", testenv.BusyboxImage(t, nil))
	pull, err := cl.ImagePull(ctx, ref, docker.ImagePullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pull.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	const n = MaxContainers + 3
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := cl.ContainerCreate(ctx, docker.ContainerCreateOptions{Name: fmt.Sprintf("many-%02d", i), Config: &mobycontainer.Config{Image: ref}})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := waitFor(t, st, fmt.Sprintf("%d containers", n), func(s Snapshot) bool { return len(s.Containers) == n })
	m := Build(s, time.Now())
	mustItem(t, m, "3 more… → Open Berth Window").enabled(t).does(t, Action{Kind: OpenWindow})
	// The most recent first: the last created leads.
	newest := s.Containers[0]
	for _, c := range s.Containers {
		if c.Created.After(newest.Created) {
			t.Errorf("%s (created %v) is listed after %s (created %v)", c.Name, c.Created, newest.Name, newest.Created)
		}
	}
	if _, err := cl.ContainerPrune(ctx, docker.ContainerPruneOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "no containers after prune", func(s Snapshot) bool { return len(s.Containers) == 0 })
}

// TestSetUpKernel: an engine without a kernel shows "No Linux kernel"
// and Set up kernel…; Set up kernel… with a file that is not a kernel is
// an error naming it; with a real kernel the model's kernel follows.
func TestSetUpKernel(t *testing.T) {
	t.Setenv("BERTH_KERNEL", "/nonexistent/vmlinuz")
	h := engineHome(t)
	startEngine(t, h)
	st, d, _ := menuFor(t, h)
	ctx := context.Background()
	s := waitFor(t, st, "running", func(s Snapshot) bool { return s.Engine.State == EngineRunning })
	if s.Kernel.Error == "" {
		t.Fatalf("BERTH_KERNEL names no file, yet the kernel is %+v", s.Kernel)
	}
	m := Build(s, time.Now())
	mustItem(t, m, "No Linux kernel: "+s.Kernel.Error)
	setUp := mustItem(t, m, "Set up kernel…").enabled(t)
	mustItem(t, m, "Run Image…").disabledBecause(t, "No Linux kernel: set up a kernel first.")
	t.Logf("no kernel: %s", s.Kernel.Error)
	os.Unsetenv("BERTH_KERNEL") // t.Setenv restores it after the test
	a, err := setUp.Action.WithInput(map[string]string{"path": "/etc/hostname"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Do(ctx, a); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "set up kernel /etc/hostname") {
		t.Errorf("a file that is not a kernel: %v, want invalid argument naming it", err)
	}
	kernels, _ := filepath.Glob(filepath.Join(launcher.KernelCacheDir(), runtime.GOARCH, "boot", "vmlinuz-*"))
	if len(kernels) == 0 {
		testenv.Unavailable(t, "no Debian kernel in %s (make kernel)", launcher.KernelCacheDir())
	}
	a, _ = Action{Kind: SetUpKernel}.WithInput(map[string]string{"path": kernels[0]})
	r, err := d.Do(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	s = st.Snapshot()
	if s.Kernel.Error != "" || s.Kernel.Version == "" || r.Message != "Berth boots Linux "+s.Kernel.Version {
		t.Errorf("after setting %s: %+v, %q", kernels[0], s.Kernel, r.Message)
	}
}
