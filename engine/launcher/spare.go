package launcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/backend"
)

// Spare VMs (fast start's pool of one, docs/fast-start.md): for each
// template a container's VM was restored from, the engine keeps one VM
// restored from it ahead of need: QEMU started with the template's
// state, continued, its agent answering, on a placeholder root disk of
// its own and with its NIC's backend joined to nothing. A container
// start claims it instead of restoring: the VM is handed the
// container's root disk, state directory and console log
// (vmm.HandoverDriver), its NIC starts carrying frames to the
// container's switch port, and the agent's FinishRestore (clock, CRNG
// reseed, MAC, root mount) runs then, never ahead, so two containers
// never share any of it. The next spare is restored in the background
// once the engine has started no VM for a while; a spare nothing claims
// is stopped after an idle time (WithSpareIdle).

const (
	// DefaultSpareIdle is how long a spare VM nothing claims is kept.
	DefaultSpareIdle = 10 * time.Minute
	// spareSettle is how long the engine must have started no VM before
	// it restores a spare: the container it started last is still
	// coming up (CPU-bound work under TCG a restore would compete with).
	spareSettle = 2 * time.Second
)

// The states of a spare (types.SpareStatus.State).
const (
	spareWaiting   = "waiting"
	spareRestoring = "restoring"
	spareReady     = "ready"
)

// spare is one VM restored ahead of need for one template.
type spare struct {
	key   string
	state string
	since time.Time

	m         vmm.Machine
	link      *spareLink // the NIC's backend; nil without a switch port
	dir       string     // its state directory: placeholder disk, console log
	idle      *time.Timer
	stopWatch context.CancelFunc
}

// spares keeps a Launcher's spare VMs, one per template at most.
type spares struct {
	dir      string
	log      *slog.Logger
	idle     time.Duration
	off      error       // why none are kept; nil: they are
	building func() bool // template builds are under way

	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	byKey     map[string]*spare
	starting  int       // VM starts under way (Launch)
	lastStart time.Time // when the last VM start ended
	closed    bool
}

func newSpares(dir string, log *slog.Logger, idle time.Duration, off error, building func() bool) *spares {
	ctx, cancel := context.WithCancel(context.Background())
	return &spares{dir: dir, log: log, idle: idle, off: off, building: building, ctx: ctx, cancel: cancel, byKey: map[string]*spare{}}
}

// begin notes a VM start (cold or warm) under way: no spare is restored
// meanwhile, nor within spareSettle after it. Call the result when the
// start ends.
func (p *spares) begin() (end func()) {
	p.mu.Lock()
	p.starting++
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		p.starting--
		p.lastStart = time.Now()
		p.mu.Unlock()
	}
}

// refill restores a spare for tpl in the background (cfg is the VM
// just started from it) unless one exists or is on its way, once the
// engine is quiet (waitQuiet).
func (p *spares) refill(cfg vmm.Config, tpl template) {
	if p.off != nil || len(cfg.Disks) > 0 {
		return // only the root disk is handed over
	}
	p.mu.Lock()
	if p.closed || p.byKey[tpl.key] != nil {
		p.mu.Unlock()
		return
	}
	s := &spare{key: tpl.key, state: spareWaiting, since: time.Now()}
	p.byKey[tpl.key] = s
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		if err := p.fill(s, cfg, tpl); err != nil {
			p.mu.Lock()
			if p.byKey[s.key] == s {
				delete(p.byKey, s.key)
			}
			p.mu.Unlock()
			if p.ctx.Err() == nil {
				p.log.Warn("fast start: no spare VM", "template", tpl.key, "err", err)
			}
		}
	}()
}

// waitQuiet waits until no VM start is under way, none ended within
// spareSettle and no template is being built.
func (p *spares) waitQuiet() error {
	for {
		p.mu.Lock()
		quiet := p.starting == 0 && time.Since(p.lastStart) >= spareSettle
		p.mu.Unlock()
		if quiet && !p.building() {
			return nil
		}
		select {
		case <-p.ctx.Done():
			return p.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fill restores s from tpl with cfg's layout and keeps it until it is
// claimed, idle too long, gone, or the pool closes.
func (p *spares) fill(s *spare, cfg vmm.Config, tpl template) error {
	if err := p.waitQuiet(); err != nil {
		return err
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return fmt.Errorf("spare VM: %w", err)
	}
	dir, err := os.MkdirTemp(p.dir, tpl.key[:12]+"-")
	if err != nil {
		return fmt.Errorf("spare VM: %w", err)
	}
	disk := filepath.Join(dir, "root.img")
	if err := os.WriteFile(disk, nil, 0o600); err == nil {
		err = os.Truncate(disk, templateDiskSize)
	}
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("spare VM: %w", err)
	}
	sc := cfg
	sc.ID = "spare-" + filepath.Base(dir)
	sc.StateDir = dir
	sc.Root = vmm.Disk{Path: disk}
	sc.ConsoleLog = filepath.Join(dir, "console.log")
	sc.Template, sc.Restore = false, tpl.path
	sc.Shutdown, sc.OnState = nil, nil // killed, never stopped
	var link *spareLink
	if n := cfg.Network; n != nil {
		sc.Network = &vmm.Network{}
		if n.Link != nil {
			link = newSpareLink()
			sc.Network.Link = link
		}
	}
	m, err := backend.New(sc)
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("spare VM: %w", err)
	}
	p.mu.Lock()
	if p.closed || p.byKey[s.key] != s {
		p.mu.Unlock()
		os.RemoveAll(dir)
		return errors.New("the engine is closing")
	}
	s.m, s.link, s.dir = m, link, dir
	s.state, s.since = spareRestoring, time.Now()
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, restoreTimeout)
	err = m.Start(ctx)
	cancel()
	if err != nil {
		p.discard(s)
		return fmt.Errorf("restore a spare VM from template %s: %w", tpl.key, err)
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	p.mu.Lock()
	if p.closed || p.byKey[s.key] != s {
		p.mu.Unlock()
		stopWatch()
		p.discard(s)
		return errors.New("the engine is closing")
	}
	s.state, s.since = spareReady, time.Now()
	s.stopWatch = stopWatch
	s.idle = time.AfterFunc(p.idle, func() { p.expire(s) })
	p.mu.Unlock()
	tl := m.Timeline()
	p.log.Info("fast start: a spare VM is ready", "template", tpl.key,
		"loaded", tl.Running.Sub(tl.Launched).Round(time.Millisecond), "agent", tl.AgentReady.Sub(tl.Running).Round(time.Millisecond))
	go p.watch(wctx, s)
	return nil
}

// watch drops s when its VM ends before it is claimed.
func (p *spares) watch(ctx context.Context, s *spare) {
	exit, err := s.m.Wait(ctx)
	if err != nil {
		return // claimed (or the pool closed)
	}
	if p.take(s) {
		p.log.Warn("fast start: the spare VM ended", "template", s.key, "exit", exit.String())
		p.discard(s)
	}
}

// expire stops s when nothing claimed it within the idle time.
func (p *spares) expire(s *spare) {
	if p.take(s) {
		p.log.Info("fast start: stopped a spare VM nothing claimed", "template", s.key, "idle", p.idle)
		p.discard(s)
	}
}

// take removes s from the pool; false when it is not there (claimed,
// expired, gone, or the pool closed).
func (p *spares) take(s *spare) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byKey[s.key] != s {
		return false
	}
	delete(p.byKey, s.key)
	if s.idle != nil {
		s.idle.Stop()
	}
	if s.stopWatch != nil {
		s.stopWatch()
	}
	return true
}

// discard kills s's VM and removes what it left.
func (p *spares) discard(s *spare) {
	if s.m != nil {
		s.m.Kill(context.Background())
	}
	if s.link != nil {
		s.link.abandon()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// claim hands tpl's ready spare to the VM cfg describes (root disk,
// state directory, console log, NIC) and returns it, for FinishRestore
// to complete. nil, nil: no spare is ready. On an error the spare has
// been killed; the caller restores or boots as if there had been none.
func (p *spares) claim(ctx context.Context, cfg vmm.Config, tpl template) (vmm.Machine, error) {
	p.mu.Lock()
	s := p.byKey[tpl.key]
	ready := s != nil && s.state == spareReady
	p.mu.Unlock()
	if !ready || !p.take(s) {
		return nil, nil
	}
	h, ok := s.m.(interface {
		Handover(context.Context, vmm.Config) error
	})
	if !ok {
		p.discard(s)
		return nil, fmt.Errorf("claim the spare VM: the %s backend cannot hand a VM over", s.m.Backend())
	}
	to := cfg
	to.Restore = tpl.path
	if err := h.Handover(ctx, to); err != nil {
		p.discard(s)
		return nil, fmt.Errorf("claim the spare VM: %w", err)
	}
	if s.link != nil {
		s.link.connect(cfg.Network.Link)
	}
	os.RemoveAll(s.dir) // its placeholder disk and console log until now
	return s.m, nil
}

// status lists the spares, by template.
func (p *spares) status() []types.SpareStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []types.SpareStatus
	for _, s := range p.byKey {
		st := types.SpareStatus{Template: s.key, State: s.state, Since: s.since}
		if pm, ok := s.m.(interface{ Pid() int }); ok {
			st.Pid = pm.Pid()
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b types.SpareStatus) int { return strings.Compare(a.Template, b.Template) })
	return out
}

// close kills the spares and waits for the restores under way to end.
func (p *spares) close() {
	p.mu.Lock()
	p.closed = true
	var all []*spare
	for _, s := range p.byKey {
		if s.state == spareReady {
			all = append(all, s)
		}
	}
	p.mu.Unlock()
	p.cancel()
	for _, s := range all {
		if p.take(s) {
			p.discard(s)
		}
	}
	p.wg.Wait()
}

// sweep stops the spare VMs an engine that died left running and
// removes their directories.
func (p *spares) sweep(ctx context.Context) {
	stale, err := backend.SweepOrphans(ctx, filepath.Join(p.dir, "*"))
	if err != nil {
		p.log.Warn("sweep orphaned spare VMs", "err", err)
	}
	for _, s := range stale {
		p.log.Info("stopped a spare VM whose engine was gone", "vm", s.ID, "pid", s.PID, "killed", s.Killed)
	}
	m, _ := filepath.Glob(filepath.Join(p.dir, "*"))
	for _, d := range m {
		p.mu.Lock()
		inUse := false
		for _, s := range p.byKey {
			inUse = inUse || s.dir == d
		}
		p.mu.Unlock()
		if pids, _ := filepath.Glob(filepath.Join(d, "*.pid")); !inUse && len(pids) == 0 {
			os.RemoveAll(d)
		}
	}
}

// spareLink is a spare VM's NIC backend: it carries nothing until the
// VM is claimed, then serves the claiming container's switch port.
type spareLink struct {
	to   chan vmm.Link
	gone chan struct{}
	once sync.Once
}

var _ vmm.Link = (*spareLink)(nil)

func newSpareLink() *spareLink {
	return &spareLink{to: make(chan vmm.Link, 1), gone: make(chan struct{})}
}

// ServeStream waits for the claim and serves the claimer's link.
func (s *spareLink) ServeStream(conn net.Conn) error {
	select {
	case l := <-s.to:
		return l.ServeStream(conn)
	case <-s.gone:
		return nil // the VM is gone; its driver closes conn
	}
}

// connect starts serving l (once, at the claim).
func (s *spareLink) connect(l vmm.Link) { s.to <- l }

// abandon ends a ServeStream waiting for a claim that never comes.
func (s *spareLink) abandon() { s.once.Do(func() { close(s.gone) }) }
