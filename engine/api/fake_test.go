package api

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/engine/image"
	bnet "github.com/berthvm/berth/engine/network"
	"github.com/berthvm/berth/engine/plugin"
	"github.com/berthvm/berth/engine/share"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// The fakes below stand in for the engine so that the HTTP layer is
// tested alone, without VMs: they hold a few images, containers and exec
// sessions in memory, answer with the engine's error classes and texts,
// and record what the handlers asked for. The daemon's tests serve the
// real engine.

// fakeBackend is the engine as the API sees it.
type fakeBackend struct {
	builder *fakeBuilder

	images     *fakeImages
	containers *fakeContainers
	execs      *fakeExecs
	events     *events.Bus
	// volumes is a real volume store in a test directory (newVolumes);
	// nil until a test asks for it.
	volumes *share.Store
	// shares are fake run-time shares by container name.
	shares fakeShares
	// nets is a real network manager in a test directory (newNetworks);
	// nil until a test asks for it.
	nets *bnet.Manager
}

// newNetworks gives b a real network manager in a temporary directory.
func (b *fakeBackend) newNetworks(t *testing.T) *bnet.Manager {
	t.Helper()
	m, err := bnet.New(bnet.Config{Dir: t.TempDir(), Resolvers: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	b.nets = m
	return m
}

// Builder is b.builder: nil (the endpoints answer errNoBuilder) unless a
// test sets a fakeBuilder; engine/builder's tests run the real one.
func (b *fakeBackend) Builder() Builder {
	if b.builder == nil {
		return nil
	}
	return b.builder
}

func (b *fakeBackend) Networks() Networks {
	if b.nets == nil {
		return nil
	}
	return b.nets
}

// newVolumes gives b a real volume store in a temporary directory whose
// users are users (volume → container IDs).
func (b *fakeBackend) newVolumes(t *testing.T, users map[string][]string) *share.Store {
	t.Helper()
	st, err := share.NewStore(t.TempDir(), share.WithUsers(func() map[string][]string { return users }))
	if err != nil {
		t.Fatal(err)
	}
	b.volumes = st
	return st
}

func (b *fakeBackend) Volumes() Volumes { return b.volumes }

func newFakeBackend() *fakeBackend {
	alpine := &image.Image{
		ID:       "sha256:" + strings.Repeat("a", 64),
		RepoTags: []string{"alpine:latest"},
		Created:  time.Unix(1700000000, 0),
		Size:     3 << 20,
		Labels:   map[string]string{"org.example": "yes"},
		Platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		Config:   &v1.ConfigFile{Config: v1.Config{Cmd: []string{"/bin/sh"}}},
	}
	dangling := &image.Image{ID: "sha256:" + strings.Repeat("d", 64), Created: time.Unix(1600000000, 0)}
	fc := &fakeContainers{byID: map[string]*container.Snapshot{}}
	fc.add("web", "alpine", mobycontainer.StateRunning, map[string]string{"tier": "front"})
	fc.add("job", "alpine", mobycontainer.StateExited, nil)
	return &fakeBackend{
		images:     &fakeImages{images: []*image.Image{alpine, dangling}},
		containers: fc,
		execs:      &fakeExecs{containers: fc, byID: map[string]*container.ExecState{}},
		events:     events.NewBus(),
	}
}

func (b *fakeBackend) Images() Images         { return b.images }
func (b *fakeBackend) Containers() Containers { return b.containers }
func (b *fakeBackend) Execs() Execs           { return b.execs }
func (b *fakeBackend) Events() Events         { return b.events }
func (b *fakeBackend) Terminals() Terminals   { return fakeTerminals{b.containers} }
func (b *fakeBackend) Shares() Shares {
	b.shares.containers = b.containers
	return &b.shares
}

// fakeShares records run-time shares in memory, with the engine's error
// classes, for the handlers' tests (the real ones are engine/container's
// and app's end-to-end test).
type fakeShares struct {
	containers *fakeContainers
	m          map[string][]types.Share
}

func (f *fakeShares) List(_ context.Context, ref string) ([]types.Share, error) {
	c, err := f.containers.Inspect(ref)
	if err != nil {
		return nil, err
	}
	return f.m[c.Spec.Name], nil
}

func (f *fakeShares) Add(_ context.Context, ref string, s types.Share) (types.Share, error) {
	c, err := f.containers.Inspect(ref)
	if err != nil {
		return types.Share{}, err
	}
	if f.m == nil {
		f.m = map[string][]types.Share{}
	}
	for _, o := range f.m[c.Spec.Name] {
		if o.Source == s.Source {
			return types.Share{}, errdefs.Conflict(fmt.Errorf("%s is already shared", s.Source))
		}
	}
	if s.Target == "" {
		s.Target = "/mnt/x"
	}
	f.m[c.Spec.Name] = append(f.m[c.Spec.Name], s)
	return s, nil
}

func (f *fakeShares) Remove(_ context.Context, ref, target string) error {
	c, err := f.containers.Inspect(ref)
	if err != nil {
		return err
	}
	for i, o := range f.m[c.Spec.Name] {
		if o.Target == target {
			f.m[c.Spec.Name] = append(f.m[c.Spec.Name][:i], f.m[c.Spec.Name][i+1:]...)
			return nil
		}
	}
	return errdefs.NotFound(fmt.Errorf("no share at %s", target))
}

// fakeTerminals opens terminals on the fake containers, with the
// engine's error classes.
type fakeTerminals struct{ containers *fakeContainers }

func (f fakeTerminals) Open(_ context.Context, ref string, req types.TerminalRequest) (types.Terminal, error) {
	c, err := f.containers.Inspect(ref)
	if err != nil {
		return types.Terminal{}, err
	}
	if c.State.Status != mobycontainer.StateRunning {
		return types.Terminal{}, errdefs.Conflict(fmt.Errorf("container %s is not running", ref))
	}
	return types.Terminal{ID: "session-" + c.Spec.Name + "-" + strings.Join(req.Cmd, "_"), URL: "http://127.0.0.1:1/terminal/#token=t"}, nil
}

func (b *fakeBackend) Window(context.Context) (types.Window, error) {
	return types.Window{URL: "http://127.0.0.1:1/#token=t"}, nil
}

// PluginMenu is one plugin's entry, as discovery would find it.
func (b *fakeBackend) PluginMenu(context.Context) []plugin.MenuItem {
	return []plugin.MenuItem{{Plugin: "top", Title: "Container Activity (top)", Args: []string{"--once"}}}
}

func (b *fakeBackend) Kernel(context.Context) types.KernelInfo {
	return types.KernelInfo{Version: "6.1.0-test"}
}

func (b *fakeBackend) SetKernel(_ context.Context, c types.KernelChoice) (types.KernelInfo, error) {
	if c.Path == "" && c.URL == "" {
		return types.KernelInfo{}, errdefs.InvalidArgument(errors.New("set kernel: give a path or a URL"))
	}
	return types.KernelInfo{Path: c.Path, Version: "6.1.0-set"}, nil
}

func (b *fakeBackend) Unpack(context.Context, string, string, int64) error { return nil }

func (b *fakeBackend) Status(context.Context) (types.Status, error) {
	return types.Status{Version: "9.9.9", Arch: "arm64", OS: "darwin", Backend: "vz", Kernel: types.KernelInfo{Version: "6.1.0-test"}}, nil
}

// fakeImages is an image store of a few images.
type fakeImages struct {
	mu        sync.Mutex
	images    []*image.Image
	pulled    []PullRequest
	pushed    []PushRequest
	removed   []string
	forced    []bool
	prunedAll []bool
}

func (f *fakeImages) find(ref string) (*image.Image, error) {
	for _, img := range f.images {
		if img.ID == ref || strings.TrimPrefix(img.ID, "sha256:") == ref || (len(ref) >= 3 && strings.HasPrefix(strings.TrimPrefix(img.ID, "sha256:"), ref)) {
			return img, nil
		}
		for _, t := range img.RepoTags {
			if t == ref || t == ref+":latest" {
				return img, nil
			}
		}
	}
	return nil, errdefs.NotFound(fmt.Errorf("No such image: %s", ref))
}

func (f *fakeImages) Pull(_ context.Context, req PullRequest) (*image.PullResult, error) {
	f.mu.Lock()
	f.pulled = append(f.pulled, req)
	f.mu.Unlock()
	if strings.Contains(req.Ref, "missing") {
		return nil, errdefs.NotFound(fmt.Errorf("pull %s: manifest unknown", req.Ref))
	}
	if req.Progress != nil {
		req.Progress(image.Event{ID: "layer1", State: image.PullingFSLayer})
		req.Progress(image.Event{ID: "layer1", State: image.Downloading, Current: 5, Total: 10})
		req.Progress(image.Event{ID: "layer1", State: image.Downloading, Current: 10, Total: 10})
	}
	return &image.PullResult{Ref: req.Ref, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}, Updated: true}, nil
}

func (f *fakeImages) Push(_ context.Context, req PushRequest) (*image.PushResult, error) {
	f.mu.Lock()
	f.pushed = append(f.pushed, req)
	f.mu.Unlock()
	if strings.Contains(req.Ref, "unreachable") {
		return nil, errdefs.Unavailable(fmt.Errorf("push %s: registry unreachable.example unreachable: dial tcp: connection refused", req.Ref))
	}
	if req.Progress != nil {
		req.Progress(image.Event{ID: "layer1", State: image.Preparing})
		req.Progress(image.Event{ID: "layer1", State: image.Pushing, Current: 5, Total: 10})
		req.Progress(image.Event{ID: "layer1", State: image.Pushed, Current: 10, Total: 10})
		req.Progress(image.Event{ID: "layer2", State: image.Preparing})
		req.Progress(image.Event{ID: "layer2", State: image.LayerExists, Total: 3})
	}
	_, tag, _ := strings.Cut(req.Ref[strings.LastIndex(req.Ref, "/")+1:], ":")
	return &image.PushResult{Ref: req.Ref, Tag: tag, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("c", 64)}, Size: 527}, nil
}

func (f *fakeImages) List(context.Context) ([]*image.Image, error) { return f.images, nil }

func (f *fakeImages) Get(_ context.Context, ref string) (*image.Image, error) { return f.find(ref) }

func (f *fakeImages) Tag(_ context.Context, source, target string) error {
	if _, err := f.find(source); err != nil {
		return err
	}
	return nil
}

func (f *fakeImages) Remove(_ context.Context, ref string, force bool) ([]image.DeleteItem, error) {
	img, err := f.find(ref)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, ref)
	f.forced = append(f.forced, force)
	if len(img.RepoTags) > 0 && !force && ref == "alpine" {
		return nil, errdefs.Conflict(fmt.Errorf("conflict: unable to remove repository reference %q (must force) - image %s is being used by a container", ref, image.ShortID(img.ID)))
	}
	return []image.DeleteItem{{Untagged: ref}, {Deleted: img.ID}}, nil
}

func (f *fakeImages) Prune(_ context.Context, all bool) (image.PruneReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prunedAll = append(f.prunedAll, all)
	return image.PruneReport{ImagesDeleted: []image.DeleteItem{{Deleted: f.images[1].ID}}, SpaceReclaimed: 42}, nil
}

func (f *fakeImages) Import(_ context.Context, r io.Reader) ([]*image.Image, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if string(b) != "tarball" {
		return nil, errdefs.InvalidArgument(errors.New("load: invalid tar header"))
	}
	return []*image.Image{f.images[0], f.images[1]}, nil
}

func (f *fakeImages) Export(_ context.Context, w io.Writer, refs ...string) error {
	_, err := fmt.Fprintf(w, "tar of %s", strings.Join(refs, ","))
	return err
}

func (f *fakeImages) Login(_ context.Context, server string, auth authn.Authenticator) error {
	a, err := auth.Authorization()
	if err != nil {
		return err
	}
	if a.Password != "secret" {
		return errdefs.Unauthorized(fmt.Errorf("login to %s: unauthorized: incorrect username or password", server))
	}
	return nil
}

// fakeContainers is a container manager of a few containers that never
// boot: start and stop only flip their state.
type fakeContainers struct {
	mu      sync.Mutex
	byID    map[string]*container.Snapshot
	created []container.CreateRequest
	stops   []time.Duration
	signals []string
	resized [][2]uint32
	removed []string
	samples uint64 // Stats calls so far: each reports 1ms more CPU time
	// extracted are the entries PUT archive extracted, "PATH:NAME".
	extracted []string
	// connects are the Connect and Disconnect calls, "VERB NETWORK REF
	// [ALIASES]".
	connects []string
}

// add records a container named name; its ID is name's letters repeated.
func (f *fakeContainers) add(name, img string, st mobycontainer.ContainerState, labels map[string]string) string {
	id := strings.Repeat(fmt.Sprintf("%x", name[0]), 32)
	f.byID[id] = &container.Snapshot{
		Spec: container.Spec{
			ID: id, Name: name, Image: img, ImageID: "sha256:" + strings.Repeat("a", 64), Created: time.Unix(1700000000, 0),
			Config:     &mobycontainer.Config{Image: img, Labels: labels, Cmd: []string{"sleep", "9"}},
			HostConfig: &mobycontainer.HostConfig{NetworkMode: "default"},
			Path:       "sleep", Args: []string{"9"},
		},
		State: container.State{Status: st, ExitCode: 3, IPAddress: "10.0.2.15", StartedAt: time.Now().Add(-time.Minute)},
	}
	return id
}

func (f *fakeContainers) get(ref string) (*container.Snapshot, error) {
	for id, sn := range f.byID {
		if ref == sn.Spec.Name || ref == id || (len(ref) >= 3 && strings.HasPrefix(id, ref)) {
			return sn, nil
		}
	}
	return nil, errdefs.NotFound(fmt.Errorf("No such container: %s", ref))
}

func (f *fakeContainers) Create(_ context.Context, req container.CreateRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, req)
	if req.Config.Image != "alpine" {
		return "", errdefs.NotFound(fmt.Errorf("No such image: %s", req.Config.Image))
	}
	if _, err := f.get(req.Name); req.Name != "" && err == nil {
		return "", errdefs.Conflict(fmt.Errorf("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", "/"+req.Name, "x"))
	}
	return f.add("new", req.Config.Image, mobycontainer.StateCreated, nil), nil
}

func (f *fakeContainers) Inspect(ref string) (container.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sn, err := f.get(ref)
	if err != nil {
		return container.Snapshot{}, err
	}
	return *sn, nil
}

func (f *fakeContainers) List(all bool, keep func(container.Snapshot) bool) []container.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []container.Snapshot
	for _, sn := range f.byID {
		if (all || sn.State.Status == mobycontainer.StateRunning) && keep(*sn) {
			out = append(out, *sn)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out
}

// setState moves ref to st: ErrNotModified when it is there already.
func (f *fakeContainers) setState(ref string, st mobycontainer.ContainerState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sn, err := f.get(ref)
	if err != nil {
		return err
	}
	if sn.State.Status == st {
		return container.ErrNotModified
	}
	sn.State.Status = st
	return nil
}

func (f *fakeContainers) Start(_ context.Context, ref string) error {
	return f.setState(ref, mobycontainer.StateRunning)
}

func (f *fakeContainers) Stop(_ context.Context, ref, signal string, timeout time.Duration) error {
	f.mu.Lock()
	f.stops = append(f.stops, timeout)
	f.signals = append(f.signals, signal)
	f.mu.Unlock()
	return f.setState(ref, mobycontainer.StateExited)
}

func (f *fakeContainers) Restart(_ context.Context, ref string, timeout time.Duration) error {
	f.mu.Lock()
	f.stops = append(f.stops, timeout)
	f.mu.Unlock()
	_, err := f.Inspect(ref)
	return err
}

func (f *fakeContainers) Kill(_ context.Context, ref, signal string) error {
	sn, err := f.Inspect(ref)
	if err != nil {
		return err
	}
	if sn.State.Status != mobycontainer.StateRunning {
		return errdefs.Conflict(fmt.Errorf("cannot kill container: %s: container %s is not running", ref, sn.Spec.ID))
	}
	f.mu.Lock()
	f.signals = append(f.signals, signal)
	f.mu.Unlock()
	return nil
}

func (f *fakeContainers) Wait(_ context.Context, ref string, cond container.WaitCondition) (int, error) {
	sn, err := f.Inspect(ref)
	return sn.State.ExitCode, err
}

func (f *fakeContainers) Resize(_ context.Context, ref string, rows, cols uint32) error {
	if _, err := f.Inspect(ref); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resized = append(f.resized, [2]uint32{rows, cols})
	return nil
}

func (f *fakeContainers) Rename(ref, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sn, err := f.get(ref)
	if err != nil {
		return err
	}
	sn.Spec.Name = name
	return nil
}

func (f *fakeContainers) Connect(ref, network string, ep container.Endpoint) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.get(ref); err != nil {
		return "", err
	}
	f.connects = append(f.connects, fmt.Sprintf("connect %s %s %v %v", network, ref, ep.Aliases, ep.IP))
	return network, nil
}

func (f *fakeContainers) Disconnect(ref, network string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.get(ref); err != nil {
		return "", err
	}
	f.connects = append(f.connects, fmt.Sprintf("disconnect %s %s", network, ref))
	return network, nil
}

func (f *fakeContainers) Remove(_ context.Context, ref string, opts container.RemoveOptions) error {
	force := opts.Force
	f.mu.Lock()
	defer f.mu.Unlock()
	sn, err := f.get(ref)
	if err != nil {
		return err
	}
	if sn.State.Status == mobycontainer.StateRunning && !force {
		return errdefs.Conflict(fmt.Errorf("cannot remove container %q: container is running: stop the container before removing or force remove", "/"+sn.Spec.Name))
	}
	f.removed = append(f.removed, sn.Spec.ID)
	delete(f.byID, sn.Spec.ID)
	return nil
}

func (f *fakeContainers) Prune(_ context.Context, keep func(container.Snapshot) bool) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id, sn := range f.byID {
		if sn.State.Status != mobycontainer.StateRunning && !keep(*sn) {
			ids = append(ids, id)
			delete(f.byID, id)
		}
	}
	return ids, nil
}

func (f *fakeContainers) Attach(_ context.Context, ref string, opts container.AttachOptions) error {
	if _, err := f.Inspect(ref); err != nil {
		return err
	}
	if opts.Stdout != nil {
		_, _ = io.WriteString(opts.Stdout, "attached\n")
	}
	return nil
}

// fakeLog is every fake container's log.
var fakeLog = []container.LogEntry{
	{Log: "one\n", Stream: "stdout", Time: time.Unix(100, 0)},
	{Log: "two\n", Stream: "stderr", Time: time.Unix(200, 0)},
	{Log: "three\n", Stream: "stdout", Time: time.Unix(300, 0)},
}

func (f *fakeContainers) Logs(_ context.Context, ref string, opts container.LogOptions, emit func(container.LogEntry) error) error {
	if _, err := f.Inspect(ref); err != nil {
		return err
	}
	var sel []container.LogEntry
	for _, e := range fakeLog {
		if (e.Stream == "stdout" && !opts.Stdout) || (e.Stream == "stderr" && !opts.Stderr) {
			continue
		}
		if (!opts.Since.IsZero() && e.Time.Before(opts.Since)) || (!opts.Until.IsZero() && e.Time.After(opts.Until)) {
			continue
		}
		sel = append(sel, e)
	}
	if opts.Tail >= 0 && len(sel) > opts.Tail {
		sel = sel[len(sel)-opts.Tail:]
	}
	for _, e := range sel {
		if err := emit(e); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeContainers) Stats(_ context.Context, ref string) (mobycontainer.StatsResponse, error) {
	sn, err := f.Inspect(ref)
	f.mu.Lock()
	f.samples++
	n := f.samples
	f.mu.Unlock()
	return mobycontainer.StatsResponse{ID: sn.Spec.ID, Name: "/" + sn.Spec.Name, Read: time.Unix(int64(n), 0),
		CPUStats:    mobycontainer.CPUStats{CPUUsage: mobycontainer.CPUUsage{TotalUsage: n * 1e6}, OnlineCPUs: 1},
		MemoryStats: mobycontainer.MemoryStats{Usage: 10 << 20, Limit: 512 << 20}}, err
}

func (f *fakeContainers) Top(_ context.Context, ref, psArgs string) (mobycontainer.TopResponse, error) {
	sn, err := f.Inspect(ref)
	if err != nil {
		return mobycontainer.TopResponse{}, err
	}
	if sn.State.Status != mobycontainer.StateRunning {
		return mobycontainer.TopResponse{}, errdefs.Conflict(fmt.Errorf("container %s is not running", sn.Spec.ID))
	}
	if psArgs != "" && psArgs != "-ef" {
		return mobycontainer.TopResponse{}, errdefs.InvalidArgument(fmt.Errorf("docker top options %q are not supported by Berth", psArgs))
	}
	return mobycontainer.TopResponse{Titles: []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"},
		Processes: [][]string{{"root", "1", "0", "0", "10:00", "?", "00:00:00", "sleep 60"}}}, nil
}

// fakeExecs are exec sessions that print "ran CMD" when started.
type fakeExecs struct {
	containers *fakeContainers
	mu         sync.Mutex
	byID       map[string]*container.ExecState
	starts     []ExecStart
}

func (f *fakeExecs) Create(_ context.Context, ref string, cfg container.ExecConfig) (string, error) {
	sn, err := f.containers.Inspect(ref)
	if err != nil {
		return "", err
	}
	if sn.State.Status != mobycontainer.StateRunning {
		return "", errdefs.Conflict(fmt.Errorf("container %s is not running", sn.Spec.ID))
	}
	if len(cfg.Cmd) == 0 {
		return "", errdefs.InvalidArgument(errors.New("exec: no command given"))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("exec%d", len(f.byID)+1)
	f.byID[id] = &container.ExecState{ID: id, ContainerID: sn.Spec.ID, Config: cfg}
	return id, nil
}

func (f *fakeExecs) Inspect(id string) (container.ExecState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.byID[id]
	if !ok {
		return container.ExecState{}, errdefs.NotFound(fmt.Errorf("No such exec instance: %s", id))
	}
	return *st, nil
}

func (f *fakeExecs) Start(_ context.Context, id string, opts ExecStart) (int, error) {
	st, err := f.Inspect(id)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	f.starts = append(f.starts, opts)
	code := 0
	f.byID[id].ExitCode = &code
	f.mu.Unlock()
	if opts.Stdio.Stdout != nil {
		_, _ = io.WriteString(opts.Stdio.Stdout, "ran "+strings.Join(st.Config.Cmd, " ")+"\n")
	}
	return 0, nil
}

func (f *fakeExecs) Resize(_ context.Context, id string, rows, cols uint32) error {
	_, err := f.Inspect(id)
	return err
}

// serve sends one request to a Server on b and returns the recorded
// answer.
func serve(t *testing.T, b Backend, method, path string, body io.Reader) *httptest.ResponseRecorder {
	t.Helper()
	return serveRequest(b, newRequest(method, path, body))
}

// newRequest is a request as a client sends it to the socket.
func newRequest(method, path string, body io.Reader) *http.Request {
	return httptest.NewRequest(method, path, body)
}

// serveRequest serves r with a Server on b.
func serveRequest(b Backend, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	NewServer(b, WithLogger(discardLogger())).ServeHTTP(rec, r)
	return rec
}

// errorMessage is the message of an API error answer.
func errorMessage(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct{ Message string }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q is not {\"message\": ...}: %v", rec.Body, err)
	}
	return e.Message
}

var _ http.Handler = (*Server)(nil)

// fakeExec is a created exec session "exec1" of echo in container "web".
func fakeExec() *container.ExecState {
	return &container.ExecState{ID: "exec1", ContainerID: strings.Repeat("77", 32), Config: container.ExecConfig{Cmd: []string{"echo", "hi"}}}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fakeFile is the one file the fake containers' docker cp knows.
const fakeFile = "/etc/hostname"

func (f *fakeContainers) StatPath(_ context.Context, ref, path string) (mobycontainer.PathStat, error) {
	sn, err := f.Inspect(ref)
	if err != nil {
		return mobycontainer.PathStat{}, err
	}
	if path != fakeFile {
		return mobycontainer.PathStat{}, errdefs.NotFound(fmt.Errorf("Could not find the file %s in container %s", path, sn.Spec.Name))
	}
	return mobycontainer.PathStat{Name: "hostname", Size: 5, Mode: 0o644, Mtime: time.Unix(1700000000, 0).UTC()}, nil
}

func (f *fakeContainers) ArchivePath(ctx context.Context, ref, path string, start func(mobycontainer.PathStat) (io.Writer, error)) error {
	st, err := f.StatPath(ctx, ref, path)
	if err != nil {
		return err
	}
	w, err := start(st)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	tw.WriteHeader(&tar.Header{Name: st.Name, Mode: 0o644, Size: 5, Typeflag: tar.TypeReg})
	tw.Write([]byte("fake\n"))
	return tw.Close()
}

func (f *fakeContainers) ExtractArchive(_ context.Context, ref, path string, r io.Reader, opts container.ArchiveOptions) error {
	if _, err := f.Inspect(ref); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errdefs.InvalidArgument(err)
		}
		f.mu.Lock()
		f.extracted = append(f.extracted, path+":"+h.Name)
		f.mu.Unlock()
	}
}
