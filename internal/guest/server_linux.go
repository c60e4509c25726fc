package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/errdefs/errgrpc"
)

// BootTimes are guestinit's CLOCK_BOOTTIME readings for the steps of its
// boot, reported by Info; zero for a step that did not happen.
type BootTimes struct {
	InitStart     time.Duration
	ModulesLoaded time.Duration
	RootfsMounted time.Duration
}

// Config is what the agent server needs from the program that runs it.
type Config struct {
	// Rootfs is the directory containers are rooted at (guestinit: the
	// mounted rootfs disk; tests: a directory).
	Rootfs string
	// Listener carries the agent port and the stdio ports.
	Listener transport.Listener
	// Logger receives the server's log; nil logs to stderr.
	Logger *log.Logger
	// Version is reported by Ping and Info.
	Version string
	// Boot is reported by Info.
	Boot BootTimes
	// Shutdown is called (once, after the reply is on its way) when the host
	// asks for a shutdown or a main process created with shutdown_on_exit
	// exits. guestinit syncs, unmounts and powers off there; nil means the
	// request only stops the server.
	Shutdown func(reboot bool)
	// ConfigureLinks, when true, lets ConfigureNetwork change interfaces
	// via netlink; tests on a shared machine leave it false and only the
	// rootfs files are written.
	ConfigureLinks bool
	// SetClock, when true, lets SetTime set the wall clock.
	SetClock bool
	// ReapAll makes the server reap every child, not only its own (PID 1).
	// Without it the server still reaps the container inits it started.
	ReapAll bool
	// WatchOOM follows /dev/kmsg for OOM kills (Events, WaitProcess's
	// OOMKilled). Tests on a shared machine leave it off.
	WatchOOM bool
	// LogCalls logs every call and its error (berth.debug=1).
	LogCalls bool
	// LateModules, when set, is closed once the kernel modules guestinit
	// loads after the agent serves (9p, virtiofs, overlay) are in; a Mount
	// of those filesystem types waits for it.
	LateModules <-chan struct{}
	// StageExe is a static executable that calls RunIfContainerInit first
	// (guestinit): a container's main process starts as it, inside the
	// container. Default: this program (guestinit is static; a test
	// binary linked against libc is not, and names a static build here).
	StageExe string
	// ShareStaging is the directory, outside Rootfs, where share mounts
	// (MountRequest.share) are staged before their bind into the rootfs.
	// Default: /run/berth/shares.
	ShareStaging string
	// MountRoot, when set, mounts the root disk (of rootSize bytes as
	// the host attached it) on Rootfs: the guest was booted as a
	// template (guestinit's berth.template=1), serving before its root is
	// mounted, and FinishRestore completes it after a restore. nil:
	// FinishRestore is refused.
	MountRoot func(ctx context.Context, rootSize uint64) error
	// CgroupParent is a cgroup2 directory under which every container
	// gets a cgroup of its own, the root of its cgroup namespace
	// (guestinit: /sys/fs/cgroup/berth); empty: containers stay in the
	// server's cgroup, still in a cgroup namespace of their own.
	CgroupParent string
}

// Server is the guest's agent: the ttrpc service on transport.AgentPort
// and the processes it manages.
type Server struct {
	cfg    Config
	logger *log.Logger

	mu         sync.Mutex
	procs      map[string]*process
	containers map[string]*container
	inits      map[int]*container // container init pid → container
	ports      map[uint32]string  // stdio port → process ID
	subs       map[chan *agentpb.Event]struct{}
	archives   map[uint32]*archiveJob        // docker cp transfers by port
	forwards   map[uint32]string             // ForwardUnix's ports → socket paths
	leases     map[string]context.CancelFunc // AcquireLease's renewals by NIC
	renewFloor time.Duration                 // tests: the shortest renewal wait (0: minRenew)

	stageMu sync.Mutex
	staged  map[string]string // share source → its staging mount point
	// shareConns are run-time shares' connections to the host's 9P
	// servers, by share source, closed when the share is unmounted.
	shareConns map[string]io.Closer

	restore restoreState // FinishRestore's

	cgroupSeq atomic.Uint64 // numbers the containers' cgroups

	shutdownOnce sync.Once
	serving      chan struct{}
	servingAt    time.Duration

	// hookBeforeHandler, when set (tests), runs before every unary handler.
	hookBeforeHandler atomic.Pointer[func(method string)]
}

// NewServer returns a server for cfg; Serve starts it.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Rootfs == "" {
		return nil, errors.New("new agent server: no rootfs directory")
	}
	if cfg.Listener == nil {
		return nil, errors.New("new agent server: no transport listener")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = log.New(os.Stderr, "agent: ", log.LstdFlags|log.Lmicroseconds)
	}
	return &Server{
		cfg:        cfg,
		logger:     logger,
		procs:      map[string]*process{},
		containers: map[string]*container{},
		inits:      map[int]*container{},
		ports:      map[uint32]string{},
		subs:       map[chan *agentpb.Event]struct{}{},
		archives:   map[uint32]*archiveJob{},
		staged:     map[string]string{},
		serving:    make(chan struct{}),
	}, nil
}

// Serve listens on transport.AgentPort, reaps children, and serves the
// agent API until ctx ends. It returns the listener's error, or nil after
// ctx ended.
func (s *Server) Serve(ctx context.Context) error {
	l, err := s.cfg.Listener.ListenPort(transport.AgentPort)
	if err != nil {
		return fmt.Errorf("serve agent: %w", err)
	}
	ts, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(s.intercept))
	if err != nil {
		l.Close()
		return fmt.Errorf("serve agent: %w", err)
	}
	agentpb.RegisterAgentService(ts, &service{s: s})

	reapCtx, stopReap := context.WithCancel(ctx)
	defer stopReap()
	go s.reapLoop(reapCtx)
	if s.cfg.WatchOOM {
		s.goSafe("oom watcher", func() { s.watchOOM(reapCtx.Done()) })
	}

	s.servingAt = bootTime()
	close(s.serving)
	s.logger.Printf("serving the agent on port %d", transport.AgentPort)
	errc := make(chan error, 1)
	go func() { errc <- ts.Serve(ctx, l) }()
	select {
	case err := <-errc:
		if errors.Is(err, ttrpc.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve agent: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ts.Shutdown(sctx)
		ts.Close()
		s.killAll()
		return nil
	}
}

// Serving is closed once the agent port is being served.
func (s *Server) Serving() <-chan struct{} { return s.serving }

// intercept recovers from a handler's panic — guestinit is PID 1 and its
// death panics the kernel — and gives errors their gRPC status codes.
func (s *Server) intercept(ctx context.Context, un ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Printf("panic in %s: %v\n%s", info.FullMethod, r, debug.Stack())
			resp, err = nil, status.Errorf(codes.Internal, "%s: internal error in guestinit: %v", info.FullMethod, r)
		}
	}()
	if h := s.hookBeforeHandler.Load(); h != nil {
		(*h)(info.FullMethod)
	}
	start := time.Now()
	resp, err = m(ctx, un)
	if s.cfg.LogCalls {
		s.logger.Printf("call %s: %v (%v)", info.FullMethod, err, time.Since(start).Round(time.Microsecond))
	}
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return resp, nil
}

// goSafe runs fn in a goroutine that logs a panic instead of crashing.
func (s *Server) goSafe(what string, fn func()) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				s.logger.Printf("panic in %s: %v\n%s", what, r, debug.Stack())
			}
		}()
		fn()
	}()
}

// reapLoop collects exited children on SIGCHLD: the container inits this
// server started and, with ReapAll (PID 1), every orphan.
func (s *Server) reapLoop(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Printf("panic in the reaper: %v\n%s", r, debug.Stack())
		}
	}()
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD)
	defer signal.Stop(sigs)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s.reapOnce()
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		case <-tick.C:
		}
	}
}

func (s *Server) reapOnce() {
	if s.cfg.ReapAll {
		reapExited(func(pid int, ws unix.WaitStatus) bool {
			s.initExited(pid, ws)
			return false
		})
		return
	}
	s.mu.Lock()
	pids := make([]int, 0, len(s.inits))
	for pid := range s.inits {
		pids = append(pids, pid)
	}
	s.mu.Unlock()
	for _, pid := range pids {
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
			s.initExited(pid, ws)
		}
	}
}

func (s *Server) initExited(pid int, ws unix.WaitStatus) {
	s.mu.Lock()
	c := s.inits[pid]
	delete(s.inits, pid)
	s.mu.Unlock()
	if c == nil {
		return
	}
	if c.cgroup != "" {
		if err := removeCgroup(c.cgroup); err != nil {
			s.logger.Printf("container %s: %v", c.id, err)
		}
	}
	// The processes' fates arrive on the control socket, which ends after
	// the last message the init sent: its readLoop calls initGone.
	code, sig := exitCode(ws)
	if code != 0 {
		s.logger.Printf("container %s: init (pid %d) exited with %d (signal %d)", c.id, pid, code, sig)
	}
}

// publish sends ev to every Events subscriber; a subscriber too slow to
// keep 256 events buffered loses this one (WaitProcess still has it).
func (s *Server) publish(ev *agentpb.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- ev:
		default:
			s.logger.Printf("events: a slow subscriber lost %v for %s", ev.Kind, ev.Id)
		}
	}
}

func (s *Server) subscribe() (chan *agentpb.Event, func()) {
	ch := make(chan *agentpb.Event, 256)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

// requestShutdown runs Config.Shutdown once, in the background so that
// the reply to the caller leaves first.
func (s *Server) requestShutdown(reboot bool) {
	s.shutdownOnce.Do(func() {
		s.goSafe("shutdown", func() {
			time.Sleep(50 * time.Millisecond)
			s.killAll()
			if s.cfg.Shutdown != nil {
				s.cfg.Shutdown(reboot)
			}
		})
	})
}

// killAll SIGKILLs every container init (and so every container).
func (s *Server) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for pid := range s.inits {
		unix.Kill(pid, unix.SIGKILL)
	}
}

// bootTime is CLOCK_BOOTTIME now.
func bootTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

var errNoID = errdefs.InvalidArgument(errors.New("no process id given"))

// lookup returns the process called id.
func (s *Server) lookup(id string) (*process, error) {
	if id == "" {
		return nil, errNoID
	}
	s.mu.Lock()
	p := s.procs[id]
	s.mu.Unlock()
	if p == nil {
		return nil, errdefs.NotFound(fmt.Errorf("no such process: %s", id))
	}
	return p, nil
}
