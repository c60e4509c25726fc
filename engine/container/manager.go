package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/rootfs"
	"github.com/berthvm/berth/internal/atomicfile"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobyevents "github.com/moby/moby/api/types/events"
	mobymount "github.com/moby/moby/api/types/mount"
)

// Manager owns every container of one Berth home.
//
// Locks: Manager.mu guards byID, names and execs; each Container's mu
// guards that container's mutable fields (see Container); each Exec's mu
// its own. They are taken in that order (a Manager's before a
// Container's before an Exec's), never the other way round. The output's
// lock (and under it the log file's) and the event bus's come after all
// of these and take none of them.
type Manager struct {
	// Set by NewManager, never changed.
	dir      string
	images   *image.Store
	rootfs   *rootfs.Cache
	events   *events.Bus
	log      *slog.Logger
	vms      VMLauncher
	volumes  Volumes
	networks Networks
	limits   HostLimits
	timeouts timeouts

	// ctx ends with Close: policy restarts run under it.
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool
	// policy counts the policy starts under way (restarts and the
	// engine's own starts); Close waits for them. bgMu orders their Add
	// against Close's Wait.
	bgMu   sync.Mutex
	policy sync.WaitGroup

	mu    sync.Mutex
	byID  map[string]*Container
	names map[string]string // name → ID
	execs map[string]*Exec  // exec ID → exec
}

// Config configures a Manager.
type Config struct {
	// Dir holds one directory per container ($BERTH_HOME/containers).
	Dir string
	// Images resolves and (unless told not to) pulls images.
	Images *image.Store
	// Rootfs builds base root filesystems and clones them.
	Rootfs *rootfs.Cache
	// Events receives container events.
	Events *events.Bus
	// VMs boots the micro-VMs; nil means containers can be created but
	// not started (the error says why).
	VMs VMLauncher
	// Volumes makes the named volumes containers mount (engine/share's
	// Store); nil: creating a container with a volume fails, saying so.
	Volumes Volumes
	// Networks attaches containers to Berth's networks; nil: each VM
	// gets the backend's own NAT and publishing ports is refused.
	Networks Networks
	// Log is the engine's logger.
	Log *slog.Logger
	// Limits is what the host can give a container's VM; Create refuses
	// more. The zero value means this host's (DetectHostLimits).
	Limits HostLimits
}

// Container is one container: its spec, its state, and while it runs
// its VM.
//
// Who may touch what:
//   - dir, out and removed are set by newContainer and never replaced
//     (out has its own lock; removed is closed once, by removeStopped).
//   - spec never changes after create but for spec.Name (Rename): its ID,
//     Config and HostConfig may be read without a lock, its Name only
//     under mu or the Manager's mu (Rename holds both to change it).
//   - mu guards state, run, exited, nextStart, busy, execs and stdin, and
//     the killed flag of the current run (running's other fields are fixed
//     before it is published in run).
type Container struct {
	dir     string
	out     *output       // fans the main process's output to the log and attached clients
	removed chan struct{} // closed when the container is removed

	mu     sync.Mutex
	spec   Spec
	state  State
	run    *running      // non-nil while a VM is up
	exited chan struct{} // closed when the current run ends
	// nextStart is closed (and renewed) when a start begins.
	nextStart chan struct{}
	// busy names a lifecycle operation in progress ("starting", "removing").
	busy  string
	execs map[string]*Exec
	// stdin is what attached clients write the process's input into,
	// renewed for every run.
	stdin *inputPipe
	// pendingRestart is the timer of a policy restart waiting out its
	// backoff (restart.go); restartDelay that backoff.
	pendingRestart *restartToken
	restartDelay   time.Duration
}

// newContainer returns the in-memory container for a spec and state.
func newContainer(dir string, spec Spec, state State) *Container {
	return &Container{dir: dir, spec: spec, state: state, exited: closedChan(), nextStart: make(chan struct{}),
		removed: make(chan struct{}), execs: map[string]*Exec{}, out: newOutput(), stdin: newInputPipe()}
}

// NewManager loads every container under cfg.Dir. A container recorded as
// running belonged to an engine that died: what is left of its VM is
// stopped and it is marked exited, with the reason, so nothing is
// silently lost; a container removed half-way is finished off.
func NewManager(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Events == nil {
		cfg.Events = events.NewBus()
	}
	if cfg.Limits == (HostLimits{}) {
		var err error
		if cfg.Limits, err = DetectHostLimits(); err != nil {
			cfg.Log.Warn("cannot tell the host's memory: container sizes are checked against its CPUs only", "err", err)
		}
	}
	m := &Manager{
		dir: cfg.Dir, images: cfg.Images, rootfs: cfg.Rootfs, events: cfg.Events, log: cfg.Log, vms: cfg.VMs,
		volumes: cfg.Volumes, networks: cfg.Networks, limits: cfg.Limits, timeouts: defaultTimeouts,
		byID: map[string]*Container{}, names: map[string]string{}, execs: map[string]*Exec{},
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open containers %s: %w", cfg.Dir, err)
	}
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open containers %s: %w", cfg.Dir, err)
	}
	for _, ent := range ents {
		if !ent.IsDir() {
			continue
		}
		dir := filepath.Join(cfg.Dir, ent.Name())
		var spec Spec
		var state State
		if err := readJSON(filepath.Join(dir, "config.json"), &spec); err != nil {
			// Created half-way (no config) or removed half-way: finish
			// the removal.
			m.log.Warn("removing incomplete container directory", "dir", dir, "err", err)
			os.RemoveAll(dir)
			continue
		}
		if err := readJSON(filepath.Join(dir, "state.json"), &state); err != nil {
			state = State{Status: mobycontainer.StateCreated}
		}
		c := newContainer(dir, spec, state)
		switch c.state.Status {
		case mobycontainer.StateRunning, mobycontainer.StateRestarting, mobycontainer.StatePaused:
			// Its VM is gone: it died with the engine, or the engine's
			// launcher stopped it before opening the manager.
			c.state.Status = mobycontainer.StateExited
			c.state.ExitCode = 137
			c.state.Error = "Berth's engine stopped while the container was running; its VM was stopped"
			c.state.FinishedAt = time.Now().UTC()
			c.state.Pid = 0
			c.state.Ports = nil
			_ = atomicfile.WriteJSON(filepath.Join(dir, "state.json"), c.state)
		case mobycontainer.StateCreated, mobycontainer.StateExited:
			if !c.state.Starting {
				break
			}
			// It died with the engine during its start: a failed start.
			c.state = State{
				Status:          mobycontainer.StateExited,
				ExitCode:        startFailedCode,
				Error:           "Berth's engine stopped while the container was starting; its VM was stopped",
				StartedAt:       c.state.StartedAt,
				FinishedAt:      time.Now().UTC(),
				RestartCount:    c.state.RestartCount,
				ManuallyStopped: c.state.ManuallyStopped,
			}
			_ = atomicfile.WriteJSON(filepath.Join(dir, "state.json"), c.state)
		case mobycontainer.StateRemoving, mobycontainer.StateDead:
			m.log.Warn("finishing removal of container", "id", c.spec.ID)
			os.RemoveAll(dir)
			continue
		}
		if c.spec.HostConfig != nil && c.spec.HostConfig.AutoRemove && c.state.Status == mobycontainer.StateExited {
			os.RemoveAll(dir)
			continue
		}
		m.byID[c.spec.ID] = c
		m.names[c.spec.Name] = c.spec.ID
	}
	return m, nil
}

func closedChan() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// publish sends a container event with its name, image and labels, as
// Docker does.
func (m *Manager) publish(c *Container, action mobyevents.Action, extra map[string]string) {
	c.mu.Lock()
	ev := c.eventLocked(action, extra)
	c.mu.Unlock()
	m.events.Publish(ev)
}

// eventLocked is the container event for action; the caller holds c.mu.
// (The bus's lock is a leaf: publishing under c.mu is allowed, and keeps
// an event in order with the state change it reports.)
func (c *Container) eventLocked(action mobyevents.Action, extra map[string]string) events.Message {
	attrs := map[string]string{"name": c.spec.Name, "image": c.spec.Image}
	if c.spec.Config != nil {
		for k, v := range c.spec.Config.Labels {
			attrs[k] = v
		}
	}
	for k, v := range extra {
		attrs[k] = v
	}
	return events.Message{Type: mobyevents.ContainerEventType, Action: action, Actor: mobyevents.Actor{ID: c.spec.ID, Attributes: attrs}}
}

// Exists reports whether a container with the full ID id exists.
func (m *Manager) Exists(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.byID[id]
	return ok
}

// Get finds a container by full ID, unique ID prefix or name (with or
// without the leading slash).
func (m *Manager) Get(ref string) (*Container, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.getLocked(ref)
}

func (m *Manager) getLocked(ref string) (*Container, error) {
	name := strings.TrimPrefix(ref, "/")
	if c, ok := m.byID[ref]; ok {
		return c, nil
	}
	if id, ok := m.names[name]; ok {
		return m.byID[id], nil
	}
	if ref != "" && isHex(ref) {
		var found *Container
		for id, c := range m.byID {
			if strings.HasPrefix(id, ref) {
				if found != nil {
					return nil, errdefs.InvalidArgument(fmt.Errorf("multiple containers match the ID prefix %s: use more digits", ref))
				}
				found = c
			}
		}
		if found != nil {
			return found, nil
		}
	}
	return nil, errdefs.NotFound(fmt.Errorf("No such container: %s", ref))
}

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// Snapshot returns a consistent copy of the container's spec and state.
func (c *Container) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Snapshot{Spec: c.spec, State: c.state, Dir: c.dir}
	for id := range c.execs {
		s.ExecIDs = append(s.ExecIDs, id)
	}
	sort.Strings(s.ExecIDs)
	return s
}

// ID is the container's ID.
func (c *Container) ID() string { return c.spec.ID }

// saveState writes the state file; the caller holds c.mu.
func (c *Container) saveStateLocked() error {
	return atomicfile.WriteJSON(filepath.Join(c.dir, "state.json"), c.state)
}

// List returns every container (all) or the running ones, newest first,
// that pass the filter.
func (m *Manager) List(all bool, keep func(Snapshot) bool) []Snapshot {
	m.mu.Lock()
	cs := make([]*Container, 0, len(m.byID))
	for _, c := range m.byID {
		cs = append(cs, c)
	}
	m.mu.Unlock()
	var out []Snapshot
	for _, c := range cs {
		s := c.Snapshot()
		if !all && s.State.Status != mobycontainer.StateRunning {
			continue
		}
		if keep != nil && !keep(s) {
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Created.After(out[j].Spec.Created) })
	return out
}

// InUse reports whether any container uses the image with this ID (the
// image store's hook for rmi).
func (m *Manager) InUse(imageID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.byID {
		if c.spec.ImageID == imageID {
			return true
		}
	}
	return false
}

// VolumeUsers maps each volume some container mounts (running or not)
// to those containers' IDs: the volume store's hook for rm and prune.
func (m *Manager) VolumeUsers() map[string][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]string{}
	for _, c := range m.byID {
		for _, mt := range c.spec.Mounts {
			if mt.Type == mobymount.TypeVolume {
				out[mt.Source] = append(out[mt.Source], c.spec.ID)
			}
		}
	}
	for _, ids := range out {
		sort.Strings(ids)
	}
	return out
}

// UsesManifest reports whether any container was cloned from the base
// rootfs of this manifest digest.
func (m *Manager) UsesManifest(digest string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.byID {
		if c.spec.ImageManifest == digest {
			return true
		}
	}
	return false
}

// Counts returns how many containers exist and run.
func (m *Manager) Counts() (total, running int) {
	for _, s := range m.List(true, nil) {
		total++
		if s.State.Status == mobycontainer.StateRunning {
			running++
		}
	}
	return total, running
}

// WaitCondition is what Wait waits for, as in Docker's API.
type WaitCondition string

// The wait conditions.
const (
	WaitNotRunning WaitCondition = "not-running"
	WaitNextExit   WaitCondition = "next-exit"
	WaitRemoved    WaitCondition = "removed"
)

// Wait blocks until the container meets cond, and returns its exit code
// then. For next-exit it waits for the end of the current or next run.
func (m *Manager) Wait(ctx context.Context, ref string, cond WaitCondition) (int, error) {
	c, err := m.Get(ref)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	var ch <-chan struct{}
	switch cond {
	case WaitRemoved:
		ch = c.removed
	case WaitNextExit:
		c.mu.Unlock()
		return m.waitNextExit(ctx, c)
	default:
		ch = c.exited
	}
	c.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.ExitCode, nil
}

// waitNextExit waits for the end of the run that is starting or running,
// or else of the next one to start.
func (m *Manager) waitNextExit(ctx context.Context, c *Container) (int, error) {
	for {
		c.mu.Lock()
		exited, next := c.exited, c.nextStart
		current := c.run != nil || c.busy == "starting"
		c.mu.Unlock()
		if current {
			select {
			case <-exited:
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.state.ExitCode, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		select {
		case <-next:
		case <-c.removed:
			return 0, errdefs.NotFound(fmt.Errorf("No such container: %s", c.spec.ID))
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// RemoveOptions says how RemoveWith removes a container.
type RemoveOptions struct {
	// Force kills a running container first.
	Force bool
	// Volumes removes its anonymous volumes too (docker rm -v).
	Volumes bool
}

// Remove deletes a container and everything under its directory. A
// running container needs force, which kills it first.
func (m *Manager) Remove(ctx context.Context, ref string, force bool) error {
	return m.RemoveWith(ctx, ref, RemoveOptions{Force: force})
}

// RemoveWith is Remove with options: with Volumes, the container's
// anonymous volumes go with it, as with docker rm -v.
func (m *Manager) RemoveWith(ctx context.Context, ref string, o RemoveOptions) error {
	force := o.Force
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	// A start in progress (a restart by policy, say) is let finish first.
	if err := c.waitStartLocked(ctx); err != nil {
		return err
	}
	running, name := c.run != nil, c.spec.Name
	if c.pendingRestart != nil {
		if !force {
			c.mu.Unlock()
			return errdefs.Conflict(fmt.Errorf("cannot remove container %q: container is restarting: stop the container before removing or force remove", "/"+name))
		}
		c.cancelRestartLocked()
	}
	switch c.busy {
	case "removing":
		c.mu.Unlock()
		return errdefs.Conflict(fmt.Errorf("removal of container %s is already in progress", c.spec.ID[:12]))
	case "starting":
		c.mu.Unlock()
		return errdefs.Conflict(fmt.Errorf("container %s is starting: remove it once it runs (with --force) or has stopped", c.spec.ID[:12]))
	}
	c.mu.Unlock()
	if running {
		if !force {
			return errdefs.Conflict(fmt.Errorf("cannot remove container %q: container is running: stop the container before removing or force remove", "/"+name))
		}
		if err := m.Kill(ctx, c.spec.ID, "SIGKILL"); err != nil && !errors.Is(err, errdefs.ErrConflict) {
			return fmt.Errorf("remove container %s: %w", c.spec.ID[:12], err)
		}
		select {
		case <-c.exitedChan():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return m.removeStopped(c, o.Volumes)
}

func (c *Container) exitedChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exited
}

// removeStopped deletes a container that does not run, and its anonymous
// volumes with volumes.
func (m *Manager) removeStopped(c *Container, volumes bool) error {
	c.mu.Lock()
	switch c.busy {
	case "removing":
		c.mu.Unlock()
		return nil
	case "starting":
		c.mu.Unlock()
		return errdefs.Conflict(fmt.Errorf("container %s is starting again: not removed", c.spec.ID[:12]))
	}
	c.busy = "removing"
	c.state.Status = mobycontainer.StateRemoving
	_ = c.saveStateLocked()
	c.mu.Unlock()
	if err := os.RemoveAll(c.dir); err != nil {
		c.mu.Lock()
		c.state.Status = mobycontainer.StateDead
		c.state.Error = fmt.Sprintf("removal failed: %v", err)
		_ = c.saveStateLocked()
		c.busy = ""
		c.mu.Unlock()
		return fmt.Errorf("remove container %s: %w", c.spec.ID[:12], err)
	}
	m.mu.Lock()
	delete(m.byID, c.spec.ID)
	if m.names[c.spec.Name] == c.spec.ID {
		delete(m.names, c.spec.Name)
	}
	m.mu.Unlock()
	m.publish(c, mobyevents.ActionDestroy, nil)
	if m.networks != nil {
		if err := m.networks.Release(c.spec.ID); err != nil {
			m.log.Warn("release the container's address", "container", c.spec.ID[:12], "err", err)
		}
	}
	if volumes {
		m.removeAnonymousVolumes(c)
	}
	c.mu.Lock()
	c.stdin.Close() // a client attached to a container that never ran
	c.mu.Unlock()
	close(c.removed)
	return nil
}

// removeAnonymousVolumes deletes the anonymous volumes of a container
// once it is gone (--rm, docker rm -v), as Docker does; a failure is
// logged (the volume stays, for `berth volume prune`).
func (m *Manager) removeAnonymousVolumes(c *Container) {
	if m.volumes == nil {
		return
	}
	for _, mt := range c.spec.Mounts {
		if mt.Type == mobymount.TypeVolume && mt.Anonymous {
			if err := m.volumes.Remove(mt.Source, true); err != nil {
				m.log.Warn("remove anonymous volume", "container", c.spec.ID[:12], "volume", mt.Source, "err", err)
			}
		}
	}
}

// Prune removes every container that is not running and returns their IDs.
func (m *Manager) Prune(ctx context.Context, keep func(Snapshot) bool) ([]string, error) {
	var ids []string
	for _, s := range m.List(true, nil) {
		if s.State.Status == mobycontainer.StateRunning || (keep != nil && keep(s)) {
			continue
		}
		if err := m.Remove(ctx, s.Spec.ID, false); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return ids, err
		}
		ids = append(ids, s.Spec.ID)
	}
	return ids, nil
}

// Rename gives a container a new name.
func (m *Manager) Rename(ref, name string) error {
	name = strings.TrimPrefix(name, "/")
	if !ValidName(name) {
		return errdefs.InvalidArgument(fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name))
	}
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	m.mu.Lock()
	if other, taken := m.names[name]; taken && other != c.spec.ID {
		m.mu.Unlock()
		return errdefs.Conflict(fmt.Errorf("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", "/"+name, other))
	}
	c.mu.Lock()
	old := c.spec.Name
	c.spec.Name = name
	err = atomicfile.WriteJSON(filepath.Join(c.dir, "config.json"), c.spec)
	if err != nil {
		c.spec.Name = old
	} else {
		delete(m.names, old)
		m.names[name] = c.spec.ID
	}
	c.mu.Unlock()
	m.mu.Unlock()
	if err == nil {
		if m.networks != nil {
			m.networks.Rename(c.spec.ID, name)
		}
		m.publish(c, mobyevents.ActionRename, map[string]string{"oldName": "/" + old})
	}
	return err
}
