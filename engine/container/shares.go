package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/share/ninep"
	"github.com/berthvm/berth/engine/share/portsync"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/internal/atomicfile"
	mobyevents "github.com/moby/moby/api/types/events"
)

// RunShare is a host folder shared into a container at run time (berth
// share add): served to that container's VM alone by a 9P server on its
// own agent connection, and bind-mounted at Target.
type RunShare struct {
	// Source is the host folder's absolute path, symlinks resolved.
	Source string `json:"source"`
	// Target is the absolute path inside the container.
	Target string `json:"target"`
	// ReadOnly refuses changes, host-side.
	ReadOnly bool `json:"readOnly,omitempty"`
}

// RunSharePorts is how many spare byte pipes (virtio-serial ports) each
// VM gets for run-time shares. A share on one of them is 1.2–2.7× faster
// than one over the agent transport (each 9P message skips yamux; the
// guest still relays it to the kernel: docs/BENCHMARKS.md). A port
// serves one share at a time and is used again once that share is
// removed; shares beyond the free ports go over the agent transport.
// Each port costs the guest its receive buffers (the virtio console
// driver fills a queue per port); a cold boot with the four showed no
// cost in time or memory beyond the noise (docs/BENCHMARKS.md).
const RunSharePorts = 4

// MaxRunShares is how many run-time shares one container can have at
// once (recorded, so mounted at every start): RunSharePorts of them on
// the fast spare ports, the rest over the agent transport.
const MaxRunShares = 16

// liveShares are a run's mounted run-time shares, by target, and the
// state of its spare ports.
type liveShares struct {
	mu    sync.Mutex
	m     map[string]*liveShare
	ports []portState // by port, sized by the first takePort
}

// used reports whether any share is mounted, or a spare port in use,
// in the run.
func (ls *liveShares) used() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(ls.m) > 0 {
		return true
	}
	for _, p := range ls.ports {
		if p == portBusy {
			return true
		}
	}
	return false
}

// portState is what a spare port is doing in this run.
type portState uint8

const (
	portFree    portState = iota
	portBusy              // serving a share, or being set up for one
	portRetired           // closed after a failure: never used again this run
)

// takePort marks the lowest free spare port of the run's n busy and
// returns it, or -1 when none is free.
func (ls *liveShares) takePort(n int) int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.ports == nil {
		ls.ports = make([]portState, n)
	}
	for i, st := range ls.ports {
		if st == portFree {
			ls.ports[i] = portBusy
			return i
		}
	}
	return -1
}

// releasePort frees busy port i for the next share, or, when reuse is
// false (the guest may still hold it), closes its host end and retires
// it for the rest of the run.
func (ls *liveShares) releasePort(i int, conn net.Conn, reuse bool) {
	if !reuse {
		conn.Close()
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if reuse {
		ls.ports[i] = portFree
	} else {
		ls.ports[i] = portRetired
	}
}

// liveShare is one mounted run-time share: its server and the staging
// tag the guest mounted it under, and its spare port (port -1: over the
// agent transport).
type liveShare struct {
	tag    string
	server *ninep.Server
	cancel context.CancelFunc
	done   chan struct{}
	port   int
	conn   net.Conn // the port's host end
}

func (l *liveShare) close() {
	l.cancel()
	<-l.done
	l.server.Close()
}

// closeAll ends every share's server (the run is over).
func (ls *liveShares) closeAll() {
	ls.mu.Lock()
	m := ls.m
	ls.m = nil
	ls.mu.Unlock()
	for _, l := range m {
		l.close()
	}
}

// checkShareSource resolves dir, which must be an existing folder.
func checkShareSource(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", errdefs.InvalidArgument(fmt.Errorf("share %s: the folder must be an absolute path", dir))
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", errdefs.InvalidArgument(fmt.Errorf("share %s: no such folder on the host", dir))
		}
		return "", errdefs.InvalidArgument(fmt.Errorf("share %s: %w", dir, err))
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", errdefs.InvalidArgument(fmt.Errorf("share %s: %w", dir, err))
	}
	if !fi.IsDir() {
		return "", errdefs.InvalidArgument(fmt.Errorf("share %s: it is a file, not a folder; share the folder that holds it (%s)", dir, filepath.Dir(dir)))
	}
	return real, nil
}

// checkShareTarget checks an explicit target path inside the container.
func checkShareTarget(t string) (string, error) {
	if !path.IsAbs(t) {
		return "", errdefs.InvalidArgument(fmt.Errorf("share target %q must be an absolute path inside the container", t))
	}
	t = path.Clean(t)
	if t == "/" {
		return "", errdefs.InvalidArgument(errors.New("share target cannot be the container's root"))
	}
	return t, nil
}

// usedTargets are the container's mount targets: binds, volumes and
// run-time shares.
func usedTargets(spec Spec) map[string]bool {
	used := map[string]bool{}
	for _, m := range spec.Mounts {
		used[path.Clean(m.Target)] = true
	}
	for _, s := range spec.RunShares {
		used[s.Target] = true
	}
	return used
}

// defaultShareTarget is /mnt/<folder name>, de-duplicated with -2, -3...
func defaultShareTarget(source string, used map[string]bool) string {
	name := filepath.Base(source)
	if name == "/" || name == "." || name == "" {
		name = "host"
	}
	t := "/mnt/" + name
	for i := 2; used[t]; i++ {
		t = "/mnt/" + name + "-" + strconv.Itoa(i)
	}
	return t
}

// AddShare shares the host folder s.Source into the container at
// s.Target (default /mnt/<folder name>, de-duplicated). The share is
// recorded with the container, so it comes back at every start; a
// running container gets it at once, a stopped one at its next start.
// It returns the share as recorded.
func (m *Manager) AddShare(ctx context.Context, ref string, s RunShare) (RunShare, error) {
	c, err := m.Get(ref)
	if err != nil {
		return RunShare{}, err
	}
	src, err := checkShareSource(s.Source)
	if err != nil {
		return RunShare{}, err
	}
	s.Source = src
	if s.Target != "" {
		if s.Target, err = checkShareTarget(s.Target); err != nil {
			return RunShare{}, err
		}
	}
	c.mu.Lock()
	for _, o := range c.spec.RunShares {
		if o.Source == src {
			c.mu.Unlock()
			return RunShare{}, errdefs.Conflict(fmt.Errorf("%s is already shared with container %s at %s", src, c.spec.ID[:12], o.Target))
		}
	}
	if len(c.spec.RunShares) >= MaxRunShares {
		c.mu.Unlock()
		return RunShare{}, errdefs.Conflict(fmt.Errorf("share %s: container %s already has %d folders shared at run time, the most one container takes: remove one first (berth share ls %[2]s, berth share rm %[2]s TARGET), or share a folder that holds several of them",
			src, c.spec.Name, MaxRunShares))
	}
	used := usedTargets(c.spec)
	if s.Target == "" {
		s.Target = defaultShareTarget(src, used)
	} else if used[s.Target] {
		c.mu.Unlock()
		return RunShare{}, errdefs.Conflict(fmt.Errorf("container %s already has a mount at %s: choose another --target", c.spec.ID[:12], s.Target))
	}
	old := c.spec.RunShares
	c.spec.RunShares = append(append([]RunShare{}, old...), s)
	if err := atomicfile.WriteJSON(filepath.Join(c.dir, "config.json"), c.spec); err != nil {
		c.spec.RunShares = old
		c.mu.Unlock()
		return RunShare{}, fmt.Errorf("record share of %s: %w", src, err)
	}
	r := c.run
	c.mu.Unlock()
	if r != nil {
		if err := r.mountRunShare(ctx, s); err != nil {
			c.mu.Lock()
			c.spec.RunShares = removeShare(c.spec.RunShares, s.Target)
			_ = atomicfile.WriteJSON(filepath.Join(c.dir, "config.json"), c.spec)
			c.mu.Unlock()
			return RunShare{}, err
		}
	}
	m.publish(c, ActionShareAdd, shareAttributes(s))
	return s, nil
}

// The container events a run-time share publishes, in the style of
// Docker's exec_create/exec_start: share_add when a folder is shared
// (recorded for a stopped container, mounted in a running one) and
// share_rm when it is no longer. Their attributes carry the share's
// source, target and readOnly ("true" or "false") besides the name and
// image every container event has.
const (
	ActionShareAdd    mobyevents.Action = "share_add"
	ActionShareRemove mobyevents.Action = "share_rm"
)

// shareAttributes are a share event's extra attributes.
func shareAttributes(s RunShare) map[string]string {
	return map[string]string{"source": s.Source, "target": s.Target, "readOnly": strconv.FormatBool(s.ReadOnly)}
}

func removeShare(list []RunShare, target string) []RunShare {
	var out []RunShare
	for _, s := range list {
		if s.Target != target {
			out = append(out, s)
		}
	}
	return out
}

// Shares lists the container's run-time shares.
func (m *Manager) Shares(ref string) ([]RunShare, error) {
	c, err := m.Get(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]RunShare{}, c.spec.RunShares...), nil
}

// RemoveShare stops sharing the folder at target: it is unmounted in a
// running container (lazily, if busy), its server closed, and it no
// longer comes back at start.
func (m *Manager) RemoveShare(ctx context.Context, ref, target string) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	target = path.Clean(target)
	c.mu.Lock()
	found := false
	for _, s := range c.spec.RunShares {
		found = found || s.Target == target
	}
	if !found {
		c.mu.Unlock()
		return errdefs.NotFound(fmt.Errorf("container %s has no run-time share at %s (see berth share ls)", c.spec.ID[:12], target))
	}
	old := c.spec.RunShares
	var gone RunShare
	for _, s := range old {
		if s.Target == target {
			gone = s
		}
	}
	c.spec.RunShares = removeShare(old, target)
	if err := atomicfile.WriteJSON(filepath.Join(c.dir, "config.json"), c.spec); err != nil {
		c.spec.RunShares = old
		c.mu.Unlock()
		return fmt.Errorf("remove share at %s: %w", target, err)
	}
	r := c.run
	c.mu.Unlock()
	// The share is forgotten whether or not the unmount below succeeds,
	// so the event says so either way.
	defer m.publish(c, ActionShareRemove, shareAttributes(gone))
	if r == nil {
		return nil
	}
	return r.unmountRunShare(ctx, target)
}

// mountRunShares mounts the recorded run-time shares at start. A folder
// that is gone is left out, with a note in the container's log, rather
// than failing the start; berth share rm forgets it.
func mountRunShares(ctx context.Context, c *Container, r *running, shares []RunShare) error {
	for _, s := range shares {
		if _, err := checkShareSource(s.Source); err != nil {
			c.out.write("stderr", fmt.Appendf(nil, "berth: not sharing %s at %s: %v\n", s.Source, s.Target, err))
			continue
		}
		if err := r.mountRunShare(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// mountRunShare serves s.Source to this run's VM and mounts it: on the
// next spare port when one is left (mountOverSharePort), else over an
// agent transport port.
func (r *running) mountRunShare(ctx context.Context, s RunShare) error {
	srv, err := ninep.New(s.Source, s.ReadOnly)
	if err != nil {
		return errdefs.InvalidArgument(err)
	}
	opts := []string{"version=9p2000.L", "msize=262144", "access=client", "cache=none"}
	if s.ReadOnly {
		opts = append(opts, "ro")
	}
	req := &agentpb.MountRequest{Share: true, Fstype: "9p", Target: s.Target, Options: opts}
	i := r.shares.takePort(r.sharePorts)
	if i < 0 && r.sharePorts > 0 {
		r.log.Info("run-time share: all spare ports are in use, so this one goes over the agent transport (slower on small files); berth share rm of another frees a port",
			"source", s.Source, "target", s.Target, "ports", r.sharePorts)
	}
	if i >= 0 {
		l, perr := r.mountOverSharePort(ctx, srv, req, i)
		if perr == nil {
			r.shares.add(s.Target, l)
			return nil
		}
		// The agent transport below may still work; its error, if any,
		// is the one to report.
		r.log.Warn("run-time share: spare port failed; sharing over the agent transport", "source", s.Source, "target", s.Target, "err", perr)
		srv.Close()
		if srv, err = ninep.New(s.Source, s.ReadOnly); err != nil {
			return errdefs.InvalidArgument(err)
		}
		req.SerialPort = ""
	}
	sctx, cancel := context.WithCancel(context.Background())
	l := &liveShare{server: srv, cancel: cancel, done: make(chan struct{}), port: -1}
	served := false
	err = r.agent.MountOverPort(ctx, req, func(conn net.Conn) {
		served = true
		go func() {
			defer close(l.done)
			_ = srv.Serve(sctx, conn)
		}()
	}, func(port uint32) string {
		l.tag = "run" + strconv.FormatUint(uint64(port), 10)
		return l.tag
	})
	if err != nil {
		cancel()
		if served {
			<-l.done
		}
		srv.Close()
		return fmt.Errorf("share %s at %s: %w", s.Source, s.Target, err)
	}
	r.shares.add(s.Target, l)
	return nil
}

// add records l as the share mounted at target.
func (ls *liveShares) add(target string, l *liveShare) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.m == nil {
		ls.m = map[string]*liveShare{}
	}
	ls.m[target] = l
}

// mountOverSharePort serves srv on spare port i (taken with takePort)
// and has the guest mount req over that port, which guestinit relays to
// the kernel's 9P client. The stream starts with a fresh token each way
// (portsync), so bytes an earlier share left in the port are dropped.
// On failure the port is retired for this run and srv is left to the
// caller.
func (r *running) mountOverSharePort(ctx context.Context, srv *ninep.Server, req *agentpb.MountRequest, i int) (*liveShare, error) {
	conn, err := r.vm.SharePort(i)
	if err != nil {
		r.shares.mu.Lock()
		r.shares.ports[i] = portRetired
		r.shares.mu.Unlock()
		return nil, err
	}
	token, err := portsync.NewToken()
	if err != nil {
		r.shares.releasePort(i, conn, true)
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	l := &liveShare{tag: "port" + strconv.Itoa(i), server: srv, cancel: cancel, done: make(chan struct{}), port: i, conn: conn}
	ps := &portSession{conn: conn}
	go func() {
		defer close(l.done)
		stop := context.AfterFunc(sctx, func() { ps.Close() })
		defer stop()
		if err := ps.start(token); err != nil {
			if sctx.Err() == nil {
				r.log.Warn("run-time share: start the stream on a spare port", "port", i, "err", err)
			}
			return
		}
		_ = srv.Serve(sctx, ps) // "closes" ps: the port stays open
	}()
	req.Source = l.tag
	req.SerialPort = vmm.SharePortName(i)
	req.SerialSync = token
	if err := r.agent.Mount(ctx, req); err != nil {
		cancel()
		<-l.done
		r.shares.releasePort(i, conn, false)
		return nil, fmt.Errorf("share port %s: %w", req.SerialPort, err)
	}
	return l, nil
}

// portSession is one share's use of a spare port's host end: its Close
// stops reads (a past read deadline) and later writes, and leaves the
// connection open for the port's next share.
type portSession struct {
	conn    net.Conn
	r       io.Reader // after start: what followed the guest's token, then conn
	mu      sync.Mutex
	stopped bool
}

// start drops what the port holds up to the guest's copy of token and
// answers with token (portsync). It waits as long as the guest's Mount
// call does (the guest may first wait for its 9P modules): a failed
// mount ends it through Close.
func (p *portSession) start(token []byte) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return net.ErrClosed
	}
	// A past deadline is what the port's last session left.
	p.conn.SetReadDeadline(time.Time{})
	p.mu.Unlock()
	rest, err := portsync.Skip(p.conn, token)
	if err != nil {
		return err
	}
	if _, err := p.Write(token); err != nil {
		return fmt.Errorf("share port sync: %w", err)
	}
	p.r = io.MultiReader(bytes.NewReader(rest), p.conn)
	return nil
}

func (p *portSession) Read(b []byte) (int, error) { return p.r.Read(b) }

func (p *portSession) Write(b []byte) (int, error) {
	p.mu.Lock()
	stopped := p.stopped
	p.mu.Unlock()
	if stopped {
		return 0, net.ErrClosed
	}
	return p.conn.Write(b)
}

// Close ends the session's reads and writes; the port stays open.
func (p *portSession) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	return p.conn.SetReadDeadline(time.Unix(1, 0))
}

// unmountRunShare unmounts the share at target and closes its server.
func (r *running) unmountRunShare(ctx context.Context, target string) error {
	r.shares.mu.Lock()
	l := r.shares.m[target]
	delete(r.shares.m, target)
	r.shares.mu.Unlock()
	if l == nil {
		return nil // never mounted in this run (its folder was gone at start)
	}
	err := r.agent.UnmountShare(ctx, target, l.tag)
	l.close()
	if l.port >= 0 {
		// The guest closed the port only when the unmount succeeded:
		// else it may still hold it, so the port ends here (which ends
		// the guest's mount too).
		r.shares.releasePort(l.port, l.conn, err == nil)
	}
	if err != nil && !strings.Contains(err.Error(), "not a mount point") {
		return fmt.Errorf("unshare %s: %w", target, err)
	}
	return nil
}
