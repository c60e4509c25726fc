package launcher

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/backend"
)

// Fast start (issue #25, docs/fast-start.md): a container's VM is
// restored from a saved template instead of booted. A layout's template
// is built in the background when a second VM of it boots cold. A template is a VM
// booted with vmm.Config.Template (guestinit serves its agent without
// mounting a root disk), saved once its console says it is ready and
// never spoken to (vmm.Snapshotter); each restore gets the container's own
// root disk, and the agent's FinishRestore sets its clock, reseeds its
// CRNG with host entropy, gives its NIC the VM's MAC address and mounts
// the root. A template is kept per kernel and initramfs content (which
// holds guestinit) and backend layout (backend.TemplateLayout: the
// hypervisor, architecture, vCPUs, memory, devices), in
// TemplateDir(home)/KEY.state, mode 0600 (HOME/templates unless
// $BERTH_TEMPLATE_DIR moves it; engines sharing a directory share templates).

const (
	// templateBuildTimeout bounds one template's boot and save.
	templateBuildTimeout = 3 * time.Minute
	// templateDiskSize is the template's placeholder root disk: never
	// mounted, only present so the device layout matches.
	templateDiskSize = 1 << 20
	// restoreEntropy is how many host random bytes FinishRestore mixes in.
	restoreEntropy = 64
	// templateMaxAge is how long a template nothing restored from is
	// kept: one of an older kernel, guestinit or QEMU is never used again.
	templateMaxAge = 14 * 24 * time.Hour
	// leftoverAge is how old a build's leftovers (its directory, an
	// unfinished state file) must be before sweep removes them: another
	// engine sharing the directory may be building now.
	leftoverAge = 2 * templateBuildTimeout
	// restoreTimeout bounds a restore up to a finished guest (about a
	// second under TCG), so that a restore that hangs leaves the cold
	// boot after it the rest of the boot timeout.
	restoreTimeout = 20 * time.Second
)

// FastStartStatus says whether fast start is on and lists the saved
// templates, newest use first.
func (l *Launcher) FastStartStatus() types.FastStartStatus {
	st := types.FastStartStatus{Enabled: l.fast, Dir: l.templates.dir}
	m, _ := filepath.Glob(filepath.Join(l.templates.dir, "*.state"))
	for _, p := range m {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		st.Templates = append(st.Templates, types.TemplateStatus{Key: strings.TrimSuffix(filepath.Base(p), ".state"), Size: fi.Size(), LastUsed: fi.ModTime()})
	}
	slices.SortFunc(st.Templates, func(a, b types.TemplateStatus) int { return b.LastUsed.Compare(a.LastUsed) })
	t := l.templates
	t.mu.Lock()
	st.Building = len(t.building)
	if t.lastFailed != nil {
		st.Failed = t.lastFailed.Error()
	}
	t.mu.Unlock()
	st.Spares = l.spares.status()
	if l.spares.off != nil {
		st.SparesOff = l.spares.off.Error()
	}
	return st
}

// Option configures a Launcher.
type Option func(*Launcher)

// WithTemplateDir keeps templates in dir instead of TemplateDir(home).
func WithTemplateDir(dir string) Option { return func(l *Launcher) { l.templateDir = dir } }

// WithSpareIdle sets how long a spare VM (a VM restored from a template
// ahead of need, which the next container start of its layout claims)
// nothing claims is kept: DefaultSpareIdle unless set; 0 or less keeps
// no spare VMs.
func WithSpareIdle(d time.Duration) Option { return func(l *Launcher) { l.spareIdle = d } }

// WithFastStart turns fast start on or off: on, containers' VMs are
// restored from a template where one exists (it is built in the
// background when a second VM of a layout boots cold), and boot cold
// otherwise, or when a restore fails (the reason is logged). Off by
// default here; the engine turns it on unless told not to.
func WithFastStart(on bool) Option { return func(l *Launcher) { l.fast = on } }

// templates builds and finds a Launcher's saved templates.
type templates struct {
	dir string
	log *slog.Logger

	ctx    context.Context // cancelled by Close: ends background builds
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	building map[string]chan struct{} // key → closed when its build ends
	failed   map[string]error         // key → why its last build failed
	// lastFailed is the last build failure (FastStartStatus).
	lastFailed error
}

func newTemplates(dir string, log *slog.Logger) *templates {
	ctx, cancel := context.WithCancel(context.Background())
	return &templates{dir: dir, log: log, ctx: ctx, cancel: cancel, building: map[string]chan struct{}{}, failed: map[string]error{}}
}

// sweep removes what builds of an engine that died left behind (their
// directories: placeholder disk, console log; unfinished state files),
// once older than leftoverAge, and templates nothing restored from for
// templateMaxAge (each restore touches its template).
func (t *templates) sweep() {
	for _, pat := range []string{"build-*", ".*.state.*"} {
		m, _ := filepath.Glob(filepath.Join(t.dir, pat))
		for _, p := range m {
			if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > leftoverAge {
				os.RemoveAll(p)
			}
		}
	}
	m, _ := filepath.Glob(filepath.Join(t.dir, "*.state"))
	w, _ := filepath.Glob(filepath.Join(t.dir, "*.wanted"))
	for _, p := range append(m, w...) {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > templateMaxAge {
			if os.Remove(p) == nil {
				t.log.Info("fast start: removed a template unused for long", "template", filepath.Base(p), "lastUsed", fi.ModTime())
			}
		}
	}
}

// busy reports whether a template is being built.
func (t *templates) busy() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.building) > 0
}

// close stops background builds and waits for them.
func (t *templates) close() {
	t.cancel()
	t.wg.Wait()
}

// template is where the template for one layout is (or will be).
type template struct {
	key  string
	path string
}

// templateFor names the template a VM of cfg restores from: the hash of
// the backend's layout and the kernel's and initramfs's contents. An
// error says why cfg cannot use one.
func (l *Launcher) templateFor(cfg vmm.Config) (template, error) {
	layout, err := backend.TemplateLayout(cfg)
	if err != nil {
		return template{}, err
	}
	h := sha256.New()
	for _, p := range []string{cfg.Kernel, cfg.Initramfs} {
		s, err := l.digests.sum(p)
		if err != nil {
			return template{}, err
		}
		h.Write(s[:])
	}
	h.Write([]byte(layout))
	key := hex.EncodeToString(h.Sum(nil))[:32]
	return template{key: key, path: filepath.Join(l.templates.dir, key+".state")}, nil
}

// PrepareTemplate makes sure the template a container launched with req
// restores from exists, building it now if not (waiting for a build
// already under way), and returns its path. Launch builds templates in
// the background; tests and benchmarks call this to have one first.
func (l *Launcher) PrepareTemplate(ctx context.Context, req container.LaunchRequest) (string, error) {
	cfg := l.config(req)
	tpl, err := l.templateFor(cfg)
	if err != nil {
		return "", fmt.Errorf("prepare template: %w", err)
	}
	if err := l.templates.build(ctx, cfg, tpl); err != nil {
		return "", err
	}
	return tpl.path, nil
}

// build makes tpl's file unless it exists, one build per key at a time.
func (t *templates) build(ctx context.Context, cfg vmm.Config, tpl template) error {
	for {
		if _, err := os.Stat(tpl.path); err == nil {
			return nil
		}
		t.mu.Lock()
		done, busy := t.building[tpl.key]
		if !busy {
			done = make(chan struct{})
			t.building[tpl.key] = done
		}
		t.mu.Unlock()
		if busy {
			select {
			case <-done:
				continue
			case <-ctx.Done():
				return fmt.Errorf("wait for template %s: %w", tpl.key, ctx.Err())
			}
		}
		err := t.save(ctx, cfg, tpl)
		t.mu.Lock()
		delete(t.building, tpl.key)
		if err != nil {
			t.failed[tpl.key] = err
			t.lastFailed = err
		} else {
			delete(t.failed, tpl.key)
		}
		t.mu.Unlock()
		close(done)
		return err
	}
}

// wanted reports whether tpl's layout has booted cold before (in any
// engine sharing the directory): a template is built only for a layout
// that is used again, not for a one-off VM size. The first call for a
// layout leaves a marker, KEY.wanted, and reports false.
func (t *templates) wanted(tpl template) bool {
	marker := strings.TrimSuffix(tpl.path, ".state") + ".wanted"
	if _, err := os.Stat(marker); err == nil {
		return true
	}
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return true // the build will say why
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		return true
	}
	return false
}

// buildLater starts tpl's build in the background unless one runs.
func (t *templates) buildLater(cfg vmm.Config, tpl template) {
	t.mu.Lock()
	_, busy := t.building[tpl.key]
	_, failed := t.failed[tpl.key] // logged; a new engine tries again
	t.mu.Unlock()
	if busy || failed {
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		ctx, cancel := context.WithTimeout(t.ctx, templateBuildTimeout)
		defer cancel()
		if err := t.build(ctx, cfg, tpl); err != nil && t.ctx.Err() == nil {
			t.log.Warn("fast start: building a VM template failed; containers boot cold", "template", tpl.key, "err", err)
		}
	}()
}

// save boots cfg's template VM (with a placeholder root disk, the
// backend's own NAT for a NIC, no console log of the container's), waits
// until it is ready and saves it to tpl.path.
func (t *templates) save(ctx context.Context, cfg vmm.Config, tpl template) error {
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return fmt.Errorf("build template: %w", err)
	}
	dir, err := os.MkdirTemp(t.dir, "build-")
	if err != nil {
		return fmt.Errorf("build template: %w", err)
	}
	defer os.RemoveAll(dir)
	disk := filepath.Join(dir, "root.img")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		return fmt.Errorf("build template: %w", err)
	}
	if err := os.Truncate(disk, templateDiskSize); err != nil {
		return fmt.Errorf("build template: %w", err)
	}
	tc := cfg
	tc.ID = "template-" + tpl.key[:12]
	tc.StateDir = dir
	tc.Root = vmm.Disk{Path: disk}
	tc.ConsoleLog = filepath.Join(dir, "console.log")
	tc.Template, tc.Restore = true, ""
	tc.Ping, tc.Shutdown, tc.OnState = nil, nil, nil
	if n := tc.Network; n != nil {
		// The same kind of NIC backend as the containers' (it is in the
		// layout), joined to nothing: a switch's port that drops frames.
		tc.Network = &vmm.Network{}
		if n.Link != nil {
			tc.Network.Link = discardLink{}
		}
	}
	start := time.Now()
	m, err := backend.New(tc)
	if err != nil {
		return fmt.Errorf("build template: %w", err)
	}
	defer m.Kill(context.Background())
	if err := m.Start(ctx); err != nil {
		return fmt.Errorf("build template: %w", err)
	}
	booted := time.Since(start)
	s, ok := m.(vmm.Snapshotter)
	if !ok {
		return fmt.Errorf("build template: the %s backend cannot save VMs", m.Backend())
	}
	if err := s.SaveState(ctx, tpl.path); err != nil {
		return fmt.Errorf("build template: %w", err)
	}
	var size int64
	if fi, err := os.Stat(tpl.path); err == nil {
		size = fi.Size()
	}
	os.Remove(strings.TrimSuffix(tpl.path, ".state") + ".wanted")
	t.log.Info("fast start: saved a VM template", "template", tpl.key, "booted", booted.Round(time.Millisecond),
		"saved", (time.Since(start) - booted).Round(time.Millisecond), "MiB", size>>20)
	return nil
}

// discardLink is the network a template's NIC joins when containers'
// NICs join a switch: it reads and drops the frames (a template's guest
// has not configured its NIC and sends none).
type discardLink struct{}

func (discardLink) ServeStream(conn net.Conn) error {
	_, err := io.Copy(io.Discard, conn)
	return err
}

// launchWarm restores cfg's VM from its template and completes the guest
// (FinishRestore). ok false: the caller boots cold; why says why (a
// missing template's build has been started).
func (l *Launcher) launchWarm(ctx context.Context, cfg vmm.Config) (m vmm.Machine, why error) {
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	tpl, err := l.templateFor(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(tpl.path); errors.Is(err, fs.ErrNotExist) {
		if !l.templates.wanted(tpl) {
			return nil, errors.New("no template for this layout yet (one is built when a second VM of it boots)")
		}
		l.templates.buildLater(cfg, tpl)
		return nil, errors.New("no template for this layout yet (building one)")
	} else if err != nil {
		return nil, err
	}
	root, err := os.Stat(cfg.Root.Path)
	if err != nil {
		return nil, fmt.Errorf("root disk: %w", err)
	}
	claimed := time.Now()
	switch m, err := l.spares.claim(ctx, cfg, tpl); {
	case err != nil:
		l.log.Warn("fast start: the spare VM failed; restoring", "container", shortID(cfg.ID), "reason", err)
	case m != nil:
		handover := time.Since(claimed)
		finish := time.Now()
		if err := l.finishRestore(ctx, m, cfg, root.Size()); err != nil {
			// Not the template's fault: the restore below tries it.
			l.log.Warn("fast start: the spare VM failed; restoring", "container", shortID(cfg.ID), "reason", err)
			break
		}
		l.log.Info("fast start: claimed a spare VM", "container", shortID(cfg.ID), "template", tpl.key,
			"handover", handover.Round(time.Millisecond), "finished", time.Since(finish).Round(time.Millisecond))
		touch(tpl.path)
		l.spares.refill(cfg, tpl)
		return m, nil
	}
	wc := cfg
	wc.Restore = tpl.path
	if m, err = backend.New(wc); err != nil {
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		// A template that no longer restores is rebuilt by a later
		// start; one that was only slow (a busy host) is kept.
		if ctx.Err() == nil {
			os.Remove(tpl.path)
		}
		return nil, fmt.Errorf("restore from template %s: %w", tpl.key, err)
	}
	finish := time.Now()
	if err := l.finishRestore(ctx, m, cfg, root.Size()); err != nil {
		return nil, fmt.Errorf("restore from template %s: %w", tpl.key, err)
	}
	touch(tpl.path)
	tl := m.Timeline()
	l.log.Info("fast start: restored from a template", "container", shortID(cfg.ID),
		"loaded", tl.Running.Sub(tl.Launched).Round(time.Millisecond),
		"agent", tl.AgentReady.Sub(tl.Running).Round(time.Millisecond),
		"finished", time.Since(finish).Round(time.Millisecond))
	l.spares.refill(cfg, tpl)
	return m, nil
}

// touch marks a template in use: sweep keeps it.
func touch(path string) {
	now := time.Now()
	os.Chtimes(path, now, now)
}

// finishRestore completes the guest of m, restored for cfg (whose root
// disk is rootSize bytes): the agent's FinishRestore sets its clock,
// reseeds its CRNG with host entropy, gives its NIC cfg's MAC and mounts
// the root. It kills m when that fails.
func (l *Launcher) finishRestore(ctx context.Context, m vmm.Machine, cfg vmm.Config, rootSize int64) error {
	entropy := make([]byte, restoreEntropy)
	rand.Read(entropy)
	mac := vmm.MACFor(cfg.ID)
	if cfg.Network != nil && len(cfg.Network.MAC) > 0 {
		mac = cfg.Network.MAC
	}
	if cfg.Network == nil {
		mac = nil
	}
	err := withAgent(ctx, m.Dialer(), func(ac *agent.Client) error {
		return ac.FinishRestore(ctx, time.Now(), entropy, mac, uint64(rootSize))
	})
	if err != nil {
		m.Kill(context.Background())
		return err
	}
	return nil
}
