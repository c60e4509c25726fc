package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthvm/berth/engine/api/types"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/network"
	"github.com/berthvm/berth/engine/vmm"
)

// Guest paths and ports of the builder.
const (
	// guestSocket is buildkitd's socket in the builder guest.
	guestSocket = "/run/buildkit/buildkitd.sock"
	// cacheMount is where the cache disk is mounted (buildkitd's root).
	cacheMount = "/var/lib/buildkit"
	// cacheDevice is the cache disk in the guest: the VM's second disk.
	cacheDevice = "/dev/vdb"
	// forwardPort is the transport port the agent forwards to
	// guestSocket (ForwardUnix), below the agent's stdio ports.
	forwardPort uint32 = 0x2000
)

// Defaults of Config.
const (
	DefaultIdleTimeout = 10 * time.Minute
	DefaultCacheSize   = 64 << 30
	DefaultCPUs        = 2
	DefaultMemory      = 2 << 30
	// readyTimeout bounds the wait for buildkitd's worker after boot.
	readyTimeout = 2 * time.Minute
	// retryAfter is how long a failed start answers connections with its
	// error before the next connection tries again.
	retryAfter = 30 * time.Second
)

// Config configures a Manager.
type Config struct {
	// Dir holds the builder's files: rootfs.ext4 (rewritten at each
	// start), cache.ext4 (the persistent build cache), console.log,
	// buildkitd.log and the VM's state.
	Dir string
	// Socket is the host's BuildKit socket (HOME/run/buildkitd.sock),
	// made by Serve with mode 0600.
	Socket string
	// VMs boots the builder VM.
	VMs container.VMLauncher
	// BinDir holds the Programs for the guest's arch; empty: FindBinDir.
	BinDir string
	// IdleTimeout stops the builder after it served no connection for
	// that long; 0: DefaultIdleTimeout; negative: never.
	IdleTimeout time.Duration
	// CacheSize is the cache disk's size (sparse); 0: DefaultCacheSize.
	CacheSize int64
	// CPUs and MemoryBytes size the VM; 0: the defaults.
	CPUs        int
	MemoryBytes uint64
	// Log receives the builder's lifecycle; nil: slog.Default().
	Log *slog.Logger
	// Networks, when set, gives the builder a NIC on a private user-mode
	// network of its own (network.Manager.OpenPrivate on Subnet), so
	// that buildkitd resolves names and pulls from the registries the
	// host reaches; nil: no NIC (as on a Mac for now).
	Networks *network.Manager
	// Subnet is the builder network's; zero: DefaultSubnet.
	Subnet netip.Prefix
	// Images is Berth's image store: with Networks, the builder's base
	// images come from it (LocalBases), served read-only on the builder
	// network's gateway.
	Images *image.Store
}

// Status describes the builder: the API's answer to GET /berth/builder,
// as `berth builder status` shows it.
type Status = types.BuilderStatus

// Manager runs the builder VM: it starts it on the first connection to
// the host socket (or Start), stops it after IdleTimeout without
// connections (or Stop), and forwards each connection to buildkitd in
// the guest. It is safe for concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger
	// life bounds starts (which outlive the caller that asked: others
	// may wait on them); Close cancels it.
	life    context.Context
	endLife context.CancelFunc

	mu       sync.Mutex
	run      *running      // nil while stopped
	starting chan struct{} // closed when the start under way ends
	startErr error
	// failed is the last start's error and when it ended, kept until a
	// start succeeds: a client connecting within retryAfter of it is
	// refused at once instead of booting the VM again (no boot loop for
	// a client that retries, as buildctl --wait does).
	failed   error
	failedAt time.Time
	conns    int
	idle     *time.Timer
	listener net.Listener
	closed   bool
	// registry serves Images to the builder; nil without Images.
	registry *image.Registry
}

// running is one life of the builder VM.
type running struct {
	vm     container.VM
	ac     *agent.Client
	daemon *agent.Attached
	logf   *os.File
	net    *privateNet // nil without Config.Networks
	since  time.Time
	exited chan struct{} // closed when buildkitd exited
	exit   agent.ExitStatus
}

// New returns the Manager for cfg; nothing starts until Serve or Start.
func New(cfg Config) (*Manager, error) {
	if cfg.Dir == "" || cfg.VMs == nil {
		return nil, errors.New("new builder manager: Dir and VMs are required")
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = DefaultCPUs
	}
	if cfg.MemoryBytes == 0 {
		cfg.MemoryBytes = DefaultMemory
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = DefaultSubnet
	}
	m := &Manager{cfg: cfg, log: cfg.Log}
	if cfg.Images != nil {
		m.registry = image.NewRegistry(cfg.Images)
	}
	m.life, m.endLife = context.WithCancel(context.Background())
	if m.log == nil {
		m.log = slog.Default()
	}
	return m, nil
}

func (m *Manager) cachePath() string { return filepath.Join(m.cfg.Dir, "cache.ext4") }
func (m *Manager) logPath() string   { return filepath.Join(m.cfg.Dir, "buildkitd.log") }

// Status reports the builder's state.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{Socket: m.cfg.Socket, CacheDisk: m.cachePath(), Connections: m.conns, Log: m.logPath()}
	if m.cfg.IdleTimeout > 0 {
		s.IdleTimeout = m.cfg.IdleTimeout
	}
	if st, err := os.Stat(s.CacheDisk); err == nil {
		s.CacheSize = st.Size()
		s.CacheBytes = allocated(st)
	}
	if r := m.run; r != nil {
		s.Running, s.Since, s.Backend = true, r.since, r.vm.Backend()
	}
	if m.failed != nil {
		s.LastError = m.failed.Error()
	}
	return s
}

// Start boots the builder unless it runs (trying again even right after
// a failed start): it writes the root filesystem
// (WriteRootfs) and, when missing, the cache disk (WriteCacheDisk);
// with Config.Networks, opens the builder's private network and serves
// the registry of Berth's images on its gateway; boots the VM with both
// disks (and its NIC on that network); configures its network (address,
// route, DNS at the gateway, host name); mounts the cache disk at
// /var/lib/buildkit;
// starts buildkitd as a privileged container (it runs runc, which makes
// a cgroup for each RUN step) with its output in Dir/buildkitd.log;
// has the agent forward a port to buildkitd's socket; and waits until
// buildkitd's worker is up. Concurrent calls share one start.
func (m *Manager) Start(ctx context.Context) error {
	_, err := m.ensure(ctx, true)
	return err
}

// ensure returns the running builder, starting it if needed; unless
// retry, a start that failed less than retryAfter ago is its answer.
func (m *Manager) ensure(ctx context.Context, retry bool) (*running, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, errdefs.Unavailable(errors.New("builder: the engine is shutting down"))
		}
		if r := m.run; r != nil && !r.gone() {
			m.mu.Unlock()
			return r, nil
		}
		if !retry && m.run == nil && m.starting == nil && m.failed != nil && time.Since(m.failedAt) < retryAfter {
			err := m.failed
			m.mu.Unlock()
			return nil, err
		}
		if m.run != nil { // died under us: clean up, then start anew
			r := m.run
			m.run = nil
			m.mu.Unlock()
			m.log.Warn("builder VM stopped on its own; starting a new one", "err", r.vm.Err())
			r.close()
			continue
		}
		if ch := m.starting; ch != nil {
			m.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			m.mu.Lock()
			r, err := m.run, m.startErr
			m.mu.Unlock()
			if err != nil {
				return nil, err
			}
			if r != nil {
				return r, nil
			}
			continue
		}
		ch := make(chan struct{})
		m.starting = ch
		m.mu.Unlock()

		// The start outlives a caller that gives up: others may wait on it.
		r, err := m.boot(m.life)
		m.mu.Lock()
		m.starting, m.startErr = nil, err
		m.failed, m.failedAt = err, time.Now()
		if err == nil {
			m.run = r
			if m.closed {
				m.run = nil
				err = errdefs.Unavailable(errors.New("builder: the engine is shutting down"))
			}
		}
		m.armIdleLocked()
		m.mu.Unlock()
		close(ch)
		if err != nil {
			if r != nil {
				r.shutdown(context.Background())
			}
			return nil, err
		}
		return r, nil
	}
}

// boot does Start's steps.
func (m *Manager) boot(ctx context.Context) (r *running, err error) {
	start := time.Now()
	if err := os.MkdirAll(m.cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start builder: %w", err)
	}
	boot, err := m.cfg.VMs.Prepare(ctx)
	if err != nil {
		return nil, fmt.Errorf("start builder: %w", err)
	}
	bins := m.cfg.BinDir
	if bins == "" {
		if bins, err = FindBinDir(boot.Arch); err != nil {
			return nil, fmt.Errorf("start builder: %w", err)
		}
	}
	root := filepath.Join(m.cfg.Dir, "rootfs.ext4")
	tmp := root + ".new"
	spec := RootfsSpec{BinDir: bins}
	if m.cfg.Networks != nil {
		spec.HTTPRegistries = []string{registryHost(m.cfg.Subnet)}
	}
	if err := WriteRootfs(ctx, tmp, spec); err != nil {
		return nil, fmt.Errorf("start builder: %w", err)
	}
	if err := os.Rename(tmp, root); err != nil {
		return nil, fmt.Errorf("start builder: %w", err)
	}
	m.log.Debug("builder: boot files ready", "after", time.Since(start))
	if _, err := os.Stat(m.cachePath()); errors.Is(err, os.ErrNotExist) {
		if err := WriteCacheDisk(ctx, m.cachePath(), m.cfg.CacheSize); err != nil {
			return nil, fmt.Errorf("start builder: %w", err)
		}
	}
	logf, err := os.OpenFile(m.logPath(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start builder: %w", err)
	}
	pn, err := m.openNetwork()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start builder: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	req := container.LaunchRequest{
		ID: "berth-builder", Boot: boot, Dir: m.cfg.Dir, Rootfs: root,
		Disks:      []vmm.Disk{{Path: m.cachePath()}},
		ConsoleLog: filepath.Join(m.cfg.Dir, "console.log"),
		CPUs:       m.cfg.CPUs, MemoryBytes: m.cfg.MemoryBytes, NoNetwork: pn == nil, Cold: true,
	}
	if pn != nil {
		req.Network = pn.net.Network()
	}
	vm, err := m.cfg.VMs.Launch(bctx, req)
	if err != nil {
		logf.Close()
		pn.close()
		return nil, fmt.Errorf("start builder: boot its VM: %w", err)
	}
	m.log.Debug("builder: VM booted", "after", time.Since(start))
	r = &running{vm: vm, logf: logf, net: pn, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			r.shutdown(context.Background())
			r = nil
		}
	}()
	if r.ac, err = agent.Dial(bctx, vm.Dialer()); err != nil {
		return r, fmt.Errorf("start builder: reach its agent: %w", err)
	}
	if err := configureNetwork(bctx, r); err != nil {
		return r, fmt.Errorf("start builder: %w", err)
	}
	if err := r.ac.Mount(bctx, &agentpb.MountRequest{Source: cacheDevice, Target: cacheMount, Fstype: "ext4", MkdirTarget: true}); err != nil {
		return r, fmt.Errorf("start builder: mount the cache disk %s: %w", m.cachePath(), err)
	}
	if err := r.clearBuilds(bctx); err != nil {
		return r, fmt.Errorf("start builder: clear what earlier builds left on the cache disk: %w", err)
	}
	daemon := &agentpb.CreateProcessRequest{Id: "buildkitd", Privileged: true, Hostname: "berth-builder",
		Args: []string{"/usr/bin/buildkitd", "--addr", "unix://" + guestSocket}, Env: []string{"PATH=/usr/bin:/bin"}}
	out := agent.Stdio{Stdout: logf, Stderr: logf}
	r.ac.AssignPorts(daemon, out)
	if err := r.ac.CreateProcess(bctx, daemon); err != nil {
		return r, fmt.Errorf("start builder: %w", err)
	}
	if r.daemon, err = r.ac.Attach(bctx, daemon, out); err != nil {
		return r, fmt.Errorf("start builder: %w", err)
	}
	if _, err := r.ac.StartProcess(bctx, daemon.Id); err != nil {
		return r, fmt.Errorf("start builder: start buildkitd: %w", err)
	}
	go func() {
		st, err := r.ac.WaitProcess(context.Background(), daemon.Id)
		if err == nil {
			r.exit = st
		} else {
			r.exit = agent.ExitStatus{Code: -1}
		}
		close(r.exited)
	}()
	if err := r.ac.ForwardUnix(bctx, forwardPort, guestSocket); err != nil {
		return r, fmt.Errorf("start builder: %w", err)
	}
	m.log.Debug("builder: buildkitd started", "after", time.Since(start))
	if err := m.waitReady(bctx, r); err != nil {
		return r, err
	}
	r.since = time.Now()
	m.log.Info("builder started", "in", time.Since(start).Round(time.Millisecond), "backend", vm.Backend())
	return r, nil
}

// waitReady waits until buildkitd serves its socket, which it does once
// its worker is up: it dials the forwarded port every 200 ms and reads
// the HTTP/2 settings frame a gRPC server sends first (the agent closes
// the connection at once while the socket is not there yet). buildkitd
// exiting first, or the wait running out, is an error naming the builder
// and its log.
func (m *Manager) waitReady(ctx context.Context, r *running) error {
	for {
		if serving(ctx, r) {
			return nil
		}
		select {
		case <-r.exited:
			return errdefs.Unavailable(fmt.Errorf("start builder: buildkitd exited with %d before it served; its log is %s:\n%s",
				r.exit.Code, m.logPath(), tail(m.logPath(), 20)))
		case <-r.vm.Done():
			return errdefs.Unavailable(fmt.Errorf("start builder: its VM stopped (%v) before buildkitd served; buildkitd's log is %s, the console's %s",
				r.vm.Err(), m.logPath(), filepath.Join(m.cfg.Dir, "console.log")))
		case <-ctx.Done():
			return errdefs.Unavailable(fmt.Errorf("start builder: buildkitd did not serve within %v; its log is %s:\n%s",
				readyTimeout, m.logPath(), tail(m.logPath(), 20)))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// serving reports whether buildkitd answers on the forwarded port.
func serving(ctx context.Context, r *running) bool {
	c, err := r.vm.Dialer().DialPort(ctx, forwardPort)
	if err != nil {
		return false
	}
	defer c.Close()
	t := time.AfterFunc(5*time.Second, func() { c.Close() }) // not every transport has deadlines
	defer t.Stop()
	var frame [9]byte
	_, err = io.ReadFull(c, frame[:])
	return err == nil && frame[3] == 0x4 // an HTTP/2 SETTINGS frame
}

// gone reports whether the VM or buildkitd has stopped.
func (r *running) gone() bool {
	select {
	case <-r.vm.Done():
		return true
	case <-r.exited:
		return true
	default:
		return false
	}
}

// shutdown asks the guest to power off (syncing and unmounting the cache
// disk) and kills the VM if it has not stopped within 20 s.
func (r *running) shutdown(ctx context.Context) {
	if r.ac != nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r.ac.Shutdown(sctx, false)
		cancel()
	}
	select {
	case <-r.vm.Done():
	case <-time.After(20 * time.Second):
	case <-ctx.Done():
	}
	r.close()
}

// close kills what is left of r and releases its files.
func (r *running) close() {
	r.vm.Kill()
	<-r.vm.Done()
	if r.daemon != nil {
		r.daemon.Close()
	}
	if r.ac != nil {
		r.ac.Close()
	}
	r.net.close()
	r.logf.Close()
}

// Stop shuts the builder VM down (the cache disk stays). Stopping a
// stopped builder does nothing.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	r := m.run
	m.run = nil
	if m.idle != nil {
		m.idle.Stop()
	}
	m.mu.Unlock()
	if r == nil {
		return nil
	}
	r.shutdown(ctx)
	m.log.Info("builder stopped")
	return nil
}

// Prune empties the build cache. While the builder runs, buildkitd
// prunes it (`buildctl prune --all`) and its report is returned; while
// it is stopped the cache disk is removed (a fresh one is made at the
// next start).
func (m *Manager) Prune(ctx context.Context) (string, error) {
	m.mu.Lock()
	r := m.run
	if r == nil && m.starting == nil {
		defer m.mu.Unlock()
		st, err := os.Stat(m.cachePath())
		if errors.Is(err, os.ErrNotExist) {
			return "the build cache is empty\n", nil
		}
		if err != nil {
			return "", fmt.Errorf("prune build cache: %w", err)
		}
		if err := os.Remove(m.cachePath()); err != nil {
			return "", fmt.Errorf("prune build cache: %w", err)
		}
		return fmt.Sprintf("removed the cache disk %s (%d MiB on disk)\n", m.cachePath(), allocated(st)>>20), nil
	}
	m.mu.Unlock()
	defer m.hold()()
	r, err := m.ensure(ctx, false)
	if err != nil {
		return "", fmt.Errorf("prune build cache: %w", err)
	}
	var o, e bytes.Buffer
	st, err := r.ac.Run(ctx, &agentpb.CreateProcessRequest{Id: fmt.Sprintf("prune-%d", time.Now().UnixNano()), Env: []string{"PATH=/usr/bin"},
		Args: []string{"/usr/bin/buildctl", "--addr", "unix://" + guestSocket, "prune", "--all"}}, agent.Stdio{Stdout: &o, Stderr: &e})
	if err != nil {
		return "", fmt.Errorf("prune build cache: %w", err)
	}
	if st.Code != 0 {
		return "", fmt.Errorf("prune build cache: buildctl prune exited with %d: %s", st.Code, strings.TrimSpace(e.String()))
	}
	return o.String(), nil
}

// Serve makes the host socket (mode 0600, replacing a stale one) and
// forwards each connection to buildkitd in the builder, starting the
// builder first when it is stopped, until ctx ends or Close.
func (m *Manager) Serve(ctx context.Context) error {
	if m.cfg.Socket == "" {
		return errors.New("serve builder socket: no socket path")
	}
	if err := os.MkdirAll(filepath.Dir(m.cfg.Socket), 0o755); err != nil {
		return fmt.Errorf("serve builder socket: %w", err)
	}
	l, err := listenPrivate(m.cfg.Socket)
	if err != nil {
		return fmt.Errorf("serve builder socket %s: %w", m.cfg.Socket, err)
	}
	defer os.Remove(m.cfg.Socket)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		l.Close()
		return nil
	}
	m.listener = l
	m.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("serve builder socket %s: %w", m.cfg.Socket, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.forward(ctx, c)
		}()
	}
}

// forward splices the client connection c to buildkitd in the builder.
func (m *Manager) forward(ctx context.Context, c net.Conn) {
	defer c.Close()
	defer m.hold()()
	r, err := m.ensure(ctx, false)
	if err != nil {
		m.log.Warn("builder: a client connected and the builder could not start", "err", err)
		return
	}
	g, err := r.vm.Dialer().DialPort(ctx, forwardPort)
	if err != nil {
		m.log.Warn("builder: reach buildkitd", "err", err)
		return
	}
	defer g.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(g, c); done <- struct{}{} }()
	go func() { io.Copy(c, g); done <- struct{}{} }()
	select {
	case <-done:
	case <-r.vm.Done():
	}
}

// hold counts a use of the builder (a client connection, a prune), which
// keeps it from stopping for idleness, until the returned func is called.
func (m *Manager) hold() (release func()) {
	m.mu.Lock()
	m.conns++
	if m.idle != nil {
		m.idle.Stop()
	}
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		m.conns--
		m.armIdleLocked()
		m.mu.Unlock()
	}
}

// armIdleLocked (m.mu held) starts the idle timer when the builder runs
// with no connection.
func (m *Manager) armIdleLocked() {
	if m.cfg.IdleTimeout < 0 || m.run == nil || m.conns > 0 || m.closed {
		return
	}
	if m.idle != nil {
		m.idle.Stop()
	}
	r := m.run
	m.idle = time.AfterFunc(m.cfg.IdleTimeout, func() {
		m.mu.Lock()
		if m.run != r || m.conns > 0 {
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		m.log.Info("builder idle; stopping it", "after", m.cfg.IdleTimeout)
		m.Stop(context.Background())
	})
}

// Close stops serving the socket and stops the builder.
func (m *Manager) Close() error {
	m.endLife()
	m.mu.Lock()
	m.closed = true
	if m.listener != nil {
		m.listener.Close()
	}
	m.mu.Unlock()
	return m.Stop(context.Background())
}

// listenPrivate listens on the unix socket path with mode 0600 from its
// first moment: it is made in a private (0700) directory beside path,
// made 0600 there and renamed onto path (replacing a stale socket).
func listenPrivate(path string) (net.Listener, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".sock-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// allocated is the bytes a file takes on disk (a sparse one less than
// its size).
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
