package menu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthvm/berth/app/settings"
	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
	kernelsetup "github.com/berthvm/berth/engine/kernel"
	cerrdefs "github.com/containerd/errdefs"
	mobycontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	mobymount "github.com/moby/moby/api/types/mount"
	docker "github.com/moby/moby/client"
)

// API is the part of the engine's API the menu uses. The engine's own
// client (engine/api/client.Client, the one the CLI uses) is one.
type API interface {
	Status(ctx context.Context) (types.Status, error)
	Kernel(ctx context.Context) (types.KernelInfo, error)
	SetKernel(ctx context.Context, choice types.KernelChoice) (types.KernelInfo, error)
	OpenTerminal(ctx context.Context, containerRef string, req types.TerminalRequest) (types.Terminal, error)
	Events(ctx context.Context, options docker.EventsListOptions) docker.EventsResult
	ContainerList(ctx context.Context, options docker.ContainerListOptions) (docker.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, options docker.ContainerInspectOptions) (docker.ContainerInspectResult, error)
	ContainerCreate(ctx context.Context, options docker.ContainerCreateOptions) (docker.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, id string, options docker.ContainerStartOptions) (docker.ContainerStartResult, error)
	ContainerStop(ctx context.Context, id string, options docker.ContainerStopOptions) (docker.ContainerStopResult, error)
	ContainerRestart(ctx context.Context, id string, options docker.ContainerRestartOptions) (docker.ContainerRestartResult, error)
	ContainerRemove(ctx context.Context, id string, options docker.ContainerRemoveOptions) (docker.ContainerRemoveResult, error)
	ImageList(ctx context.Context, options docker.ImageListOptions) (docker.ImageListResult, error)
	ImagePull(ctx context.Context, ref string, options docker.ImagePullOptions) (docker.ImagePullResponse, error)
	ImageRemove(ctx context.Context, ref string, options docker.ImageRemoveOptions) (docker.ImageRemoveResult, error)
	Shares(ctx context.Context, containerRef string) ([]types.Share, error)
	AddShare(ctx context.Context, containerRef string, s types.Share) (types.Share, error)
	RemoveShare(ctx context.Context, containerRef, target string) error
}

var _ API = (*client.Client)(nil)

// Notice is something worth a user notification: a pull finished or
// failed, a container exited with an error.
type Notice struct {
	Title, Body string
	// Err marks a failure.
	Err bool
}

// State keeps a Snapshot of the engine current from its events (see the
// package comment). Its methods are safe for concurrent use.
type State struct {
	api                    API
	log                    *slog.Logger
	minBackoff, maxBackoff time.Duration

	changed chan struct{}
	notices chan Notice

	mu     sync.Mutex
	engine Engine
	// hostStarting and hostFailed say that the app reported its engine
	// starting or failing since the last connection: its word stands
	// over a failed connection's.
	hostStarting, hostFailed bool
	kernel                   Kernel
	containers               map[string]Container
	images                   []Image
	pulls                    []Progress
	// kernelDownload is the kernel setup the host reported (KernelSetup).
	kernelDownload *Progress
	// launchAtLogin is the setting the host reported; nil: none.
	launchAtLogin *settings.LoginState
	// plugins finds the plugins' menu entries on each connection; nil:
	// none. pluginEntries is what it found last.
	plugins       func(context.Context) []PluginEntry
	pluginEntries []PluginEntry
	// quietBefore: deaths before this time (replayed to a new
	// connection) were noticed, or not, by the connection before.
	quietBefore time.Time
	// killed are the containers a kill (a stop, a restart, a removal)
	// was sent to: their death is no surprise worth a notice.
	killed map[string]bool
}

// StateOption configures a State.
type StateOption func(*State)

// WithLogPath names the engine's log file, offered as "Open Log" when
// the engine is not running.
func WithLogPath(path string) StateOption { return func(s *State) { s.engine.LogPath = path } }

// WithBackoff sets how long the State waits before reconnecting: min
// after a connection was lost, doubling up to max while the engine stays
// away (defaults: 100 ms and 5 s).
func WithBackoff(min, max time.Duration) StateOption {
	return func(s *State) { s.minBackoff, s.maxBackoff = min, max }
}

// WithPlugins has the State ask entries for the plugins' menu entries
// on every (re)connect to the engine (PluginEntries makes one from
// plugin discovery); without it the menu has no Plugins section.
func WithPlugins(entries func(context.Context) []PluginEntry) StateOption {
	return func(s *State) { s.plugins = entries }
}

// WithLogger sets where the State logs what it cannot show (default:
// nowhere).
func WithLogger(l *slog.Logger) StateOption { return func(s *State) { s.log = l } }

// NewState returns a State for the engine behind api, starting out as
// EngineStarting; Run keeps it current.
func NewState(api API, opts ...StateOption) *State {
	s := &State{
		api: api, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second,
		changed: make(chan struct{}, 1), notices: make(chan Notice, 16),
		containers: map[string]Container{}, killed: map[string]bool{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Changed receives a value whenever the Snapshot changed since the last
// receive (changes coalesce): the glue rebuilds the menu, or marks it
// for rebuilding when it next opens.
func (s *State) Changed() <-chan struct{} { return s.changed }

// Notices receives what deserves a user notification. When nobody reads,
// the oldest are dropped.
func (s *State) Notices() <-chan Notice { return s.notices }

// Snapshot returns a copy of what the State knows now.
func (s *State) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Engine: s.engine, Kernel: s.kernel, Images: slices.Clone(s.images), Pulls: slices.Clone(s.pulls),
		Plugins: slices.Clone(s.pluginEntries)}
	if k := s.kernelDownload; k != nil {
		kd := *k
		snap.KernelDownload = &kd
	}
	if l := s.launchAtLogin; l != nil {
		ll := *l
		snap.LaunchAtLogin = &ll
	}
	for _, c := range s.containers {
		c.Shares = slices.Clone(c.Shares)
		snap.Containers = append(snap.Containers, c)
	}
	SortContainers(snap.Containers)
	return snap
}

// EngineStarting reports that the app is starting the engine: until a
// connection succeeds, failed attempts show "Berth is starting…" rather
// than "not running".
func (s *State) EngineStarting() {
	s.update(func() {
		s.engine.State, s.engine.Reason, s.hostStarting, s.hostFailed = EngineStarting, "", true, false
	})
}

// EngineFailed reports that the app could not start the engine: the menu
// shows err as the reason until a connection succeeds.
func (s *State) EngineFailed(err error) {
	s.update(func() {
		s.engine.State, s.engine.Reason, s.hostStarting, s.hostFailed = EngineNotRunning, err.Error(), false, true
		s.clearEngineData()
	})
}

// KernelSetup reports the engine's guest kernel preparation, as the app
// hosting the engine reads it (daemon.Daemon.KernelSetup): a download or
// unpack in progress is the Snapshot's KernelDownload, with its bytes; a
// failed download stays there with its error (and "Set up kernel…")
// until the next report; a ready kernel clears it and is the Snapshot's
// kernel. A failure that was no download (a kernel file that does not
// open) is left to the kernel status the engine reports. Reports that
// change nothing do not signal Changed.
func (s *State) KernelSetup(st kernelsetup.SetupState) {
	p := kernelDownloadOf(st)
	s.mu.Lock()
	same := (p == nil && s.kernelDownload == nil) || (p != nil && s.kernelDownload != nil && *p == *s.kernelDownload)
	ready := st.Phase == kernelsetup.SetupReady && (s.kernel.Version != st.Version || s.kernel.Error != "")
	s.mu.Unlock()
	if same && !ready {
		return
	}
	s.update(func() {
		s.kernelDownload = p
		if st.Phase == kernelsetup.SetupReady {
			s.kernel = Kernel{Version: st.Version}
		}
	})
}

// SetLaunchAtLogin reports the Launch at Login setting (the app's
// settings.LaunchAtLogin.State): the menu shows it as a checked item.
func (s *State) SetLaunchAtLogin(l settings.LoginState) {
	s.update(func() { s.launchAtLogin = &l })
}

// kernelDownloadOf is st as the menu's KernelDownload, or nil.
func kernelDownloadOf(st kernelsetup.SetupState) *Progress {
	switch st.Phase {
	case kernelsetup.SetupDownloading:
		return &Progress{Subject: st.URL, Current: st.Done, Total: max(st.Total, 0)}
	case kernelsetup.SetupUnpacking:
		total := max(st.Total, st.Done)
		return &Progress{Subject: st.URL, Current: total, Total: total}
	case kernelsetup.SetupFailed:
		if st.Err != nil && errors.Is(st.Err, kernelsetup.ErrFetch) {
			return &Progress{Subject: st.URL, Err: st.Err.Error()}
		}
	}
	return nil
}

// update runs f under the lock and signals Changed.
func (s *State) update(f func()) {
	s.mu.Lock()
	f()
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// notify queues n, dropping the oldest notice when the queue is full.
func (s *State) notify(n Notice) {
	for {
		select {
		case s.notices <- n:
			return
		default:
		}
		select {
		case <-s.notices:
		default:
		}
	}
}

// Run keeps the State current until ctx is done, then returns ctx's
// error; call it once, on its own goroutine. Each connection: asks the engine's status and kernel;
// subscribes to container and image events (from just before it
// lists, so nothing between the list and the subscription is missed);
// lists containers and images; then applies events as they come. When
// the connection fails or the stream ends, the Snapshot says the engine
// is not running and why, and Run reconnects after a backoff that
// doubles while the engine stays away.
func (s *State) Run(ctx context.Context) error {
	backoff := s.minBackoff
	for {
		connected, err := s.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if connected {
			backoff = s.minBackoff
		}
		s.lost(err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, s.maxBackoff)
	}
}

// lost records a failed or ended connection.
func (s *State) lost(err error) {
	reason := "the engine stopped"
	if nr := client.NotRunning(err); nr != nil {
		reason = "nothing answers on " + nr.Socket
	} else if err != nil && !errors.Is(err, io.EOF) {
		reason = err.Error()
	}
	s.log.Info("menu: engine connection lost", "reason", reason)
	s.update(func() {
		// The host's own word (starting, or why it failed) stands until
		// a connection succeeds.
		if s.hostFailed || s.hostStarting {
			return
		}
		s.engine.State, s.engine.Reason = EngineNotRunning, reason
		s.clearEngineData()
	})
}

// clearEngineData forgets what only a running engine can vouch for.
// Pulls in progress go with their connection; failed ones stay.
func (s *State) clearEngineData() {
	s.containers = map[string]Container{}
	s.images = nil
	s.kernel = Kernel{}
}

// eventFilters are the events the menu follows.
var eventFilters = docker.Filters{}.Add("type", string(events.ContainerEventType), string(events.ImageEventType))

// session is one connection (see Run); connected reports whether it got
// as far as the event stream.
func (s *State) session(ctx context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := s.api.Status(ctx)
	if err != nil {
		return false, err
	}
	k, err := s.api.Kernel(ctx)
	if err != nil {
		return false, fmt.Errorf("kernel: %w", err)
	}
	at := time.Now()
	s.mu.Lock()
	s.quietBefore = at
	s.mu.Unlock()
	since := at.Add(-time.Second)
	ev := s.api.Events(ctx, docker.EventsListOptions{Since: fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()), Filters: eventFilters})
	cs, err := s.listContainers(ctx)
	if err != nil {
		return false, err
	}
	ims, err := s.listImages(ctx)
	if err != nil {
		return false, err
	}
	var plugins []PluginEntry
	if s.plugins != nil {
		plugins = s.plugins(ctx)
	}
	s.update(func() {
		s.pluginEntries = plugins
		s.engine.State, s.engine.Reason, s.engine.Backend = EngineRunning, "", st.Backend
		s.hostStarting, s.hostFailed = false, false
		s.kernel = kernelOf(k)
		s.containers = cs
		s.images = ims
	})
	for {
		select {
		case m := <-ev.Messages:
			if err := s.handle(ctx, m, ev.Messages); err != nil {
				return true, err
			}
		case err := <-ev.Err:
			return true, err
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

func kernelOf(k types.KernelInfo) Kernel { return Kernel{Version: k.Version, Error: k.Error} }

// refreshKernel asks the engine's kernel again (after SetUpKernel).
func (s *State) refreshKernel(ctx context.Context) {
	k, err := s.api.Kernel(ctx)
	if err != nil {
		s.log.Warn("menu: kernel", "err", err)
		return
	}
	s.update(func() { s.kernel = kernelOf(k) })
}

// maxBatch is how many queued events are applied together.
const maxBatch = 256

// handle applies m and the events queued behind it (up to maxBatch) as
// one batch; see handleBatch.
func (s *State) handle(ctx context.Context, m events.Message, queued <-chan events.Message) error {
	batch := []events.Message{m}
	for len(batch) < maxBatch {
		select {
		case m := <-queued:
			batch = append(batch, m)
			continue
		default:
		}
		break
	}
	return s.handleBatch(ctx, batch)
}

// handleBatch applies events: first each in order without asking the
// engine (deaths expected or noticed, destroyed containers dropped),
// then one refresh per container named and at most one image list, so
// that a burst of events (a prune, many containers starting) costs one
// request per thing changed and the stream keeps up. Exec events do not
// change a container. A failure that means the engine is gone ends the
// session; others are logged and the next event tries again.
func (s *State) handleBatch(ctx context.Context, batch []events.Message) error {
	var refresh []string
	images := false
	for _, m := range batch {
		switch m.Type {
		case events.ContainerEventType:
			if strings.HasPrefix(string(m.Action), "exec_") {
				continue
			}
			if id, ok := s.noteContainerEvent(m); ok && !slices.Contains(refresh, id) {
				refresh = append(refresh, id)
			}
		case events.ImageEventType:
			images = true
		}
	}
	var errs []error
	for _, id := range refresh {
		c, found, err := s.inspect(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.update(func() {
			if found {
				s.containers[id] = c
			} else {
				delete(s.containers, id)
			}
		})
	}
	if images {
		if ims, err := s.listImages(ctx); err != nil {
			errs = append(errs, err)
		} else {
			s.update(func() { s.images = ims })
		}
	}
	err := errors.Join(errs...)
	if err == nil {
		return nil
	}
	if client.NotRunning(err) != nil || ctx.Err() != nil {
		return err
	}
	s.log.Warn("menu: apply events", "err", err)
	return nil
}

// noteContainerEvent takes what a container event says without asking
// the engine: a kill or stop makes the coming death expected; a death
// nobody asked for with a non-zero exit code is a notice; a destroyed
// container is dropped. It returns the container to refresh, if any.
func (s *State) noteContainerEvent(m events.Message) (id string, refresh bool) {
	id = m.Actor.ID
	switch m.Action {
	case events.ActionKill, events.ActionStop:
		s.expectDeath(id)
	case events.ActionDie:
		s.mu.Lock()
		expected := s.killed[id] || m.TimeNano < s.quietBefore.UnixNano()
		delete(s.killed, id)
		s.mu.Unlock()
		if code := m.Actor.Attributes["exitCode"]; code != "" && code != "0" && !expected {
			name := m.Actor.Attributes["name"]
			s.notify(Notice{Title: name + " exited with code " + code, Body: "The container " + name + " (" + m.Actor.Attributes["image"] + ") stopped.", Err: true})
		}
	case events.ActionDestroy:
		s.update(func() { delete(s.containers, id); delete(s.killed, id) })
		return id, false
	}
	return id, true
}

// expectDeath marks id as being stopped on purpose.
func (s *State) expectDeath(id string) {
	s.mu.Lock()
	s.killed[id] = true
	s.mu.Unlock()
}

// listContainers lists every container with its details.
func (s *State) listContainers(ctx context.Context) (map[string]Container, error) {
	res, err := s.api.ContainerList(ctx, docker.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	cs := map[string]Container{}
	for _, sum := range res.Items {
		c, found, err := s.inspect(ctx, sum.ID)
		if err != nil {
			return nil, err
		}
		if found {
			cs[c.ID] = c
		}
	}
	return cs, nil
}

// inspect reads one container, its mounts made at create time and its
// run-time shares; found is false
// when it is gone.
func (s *State) inspect(ctx context.Context, id string) (_ Container, found bool, _ error) {
	res, err := s.api.ContainerInspect(ctx, id, docker.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return Container{}, false, nil
	}
	if err != nil {
		return Container{}, false, fmt.Errorf("inspect container %s: %w", id, err)
	}
	c := containerOf(res.Container)
	for _, m := range res.Container.Mounts {
		sh := Share{HostPath: m.Source, ContainerPath: m.Destination, ReadOnly: !m.RW, AtCreate: true}
		if m.Type == mobymount.TypeVolume {
			sh.Volume = m.Name
		}
		c.Shares = append(c.Shares, sh)
	}
	shares, err := s.api.Shares(ctx, id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return Container{}, false, nil // removed between the two requests
	}
	if err != nil {
		return Container{}, false, fmt.Errorf("list the shares of container %s: %w", id, err)
	}
	for _, sh := range shares {
		c.Shares = append(c.Shares, Share{HostPath: sh.Source, ContainerPath: sh.Target, ReadOnly: sh.ReadOnly})
	}
	return c, true, nil
}

// containerOf is an inspected container as the menu shows it.
func containerOf(r mobycontainer.InspectResponse) Container {
	c := Container{ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"), Image: r.Image, Created: parseTime(r.Created)}
	if r.Config != nil && r.Config.Image != "" {
		c.Image = r.Config.Image
	}
	if st := r.State; st != nil {
		c.State, c.ExitCode, c.Error = string(st.Status), st.ExitCode, st.Error
		c.StartedAt, c.FinishedAt = parseTime(st.StartedAt), parseTime(st.FinishedAt)
	}
	if ns := r.NetworkSettings; ns != nil && c.State == string(mobycontainer.StateRunning) {
		for _, n := range slices.Sorted(maps.Keys(ns.Networks)) {
			if ep := ns.Networks[n]; ep != nil && ep.IPAddress.IsValid() {
				c.IP = ep.IPAddress.String()
				break
			}
		}
	}
	return c
}

// parseTime reads an API timestamp; Docker's "0001-01-01T00:00:00Z" and
// anything unreadable are the zero time.
func parseTime(v string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// listImages lists the images.
func (s *State) listImages(ctx context.Context) ([]Image, error) {
	res, err := s.api.ImageList(ctx, docker.ImageListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var ims []Image
	for _, sum := range res.Items {
		var refs []string
		for _, t := range sum.RepoTags {
			if t != "<none>:<none>" {
				refs = append(refs, t)
			}
		}
		slices.Sort(refs)
		ims = append(ims, Image{ID: sum.ID, Refs: refs, Size: sum.Size, Created: time.Unix(sum.Created, 0)})
	}
	return ims, nil
}

// setPull records the progress of a pull (or adds it).
func (s *State) setPull(p Progress) {
	s.update(func() {
		for i := range s.pulls {
			if s.pulls[i].Subject == p.Subject {
				s.pulls[i] = p
				return
			}
		}
		s.pulls = append(s.pulls, p)
	})
}

// removePull forgets the pull of ref.
func (s *State) removePull(ref string) {
	s.update(func() {
		s.pulls = slices.DeleteFunc(s.pulls, func(p Progress) bool { return p.Subject == ref })
	})
}
