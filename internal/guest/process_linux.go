package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
)

type procState int

const (
	stateCreated procState = iota
	stateStarting
	stateRunning
	stateExited
)

// process is one process the host created.
type process struct {
	s   *Server
	id  string
	req *agentpb.CreateProcessRequest
	ctr *container // set at start

	mu        sync.Mutex
	state     procState
	pid       int
	listeners map[uint32]net.Listener
	conns     []net.Conn
	closers   []io.Closer // parent ends of stdio: pty master, pipes
	ptyMaster *os.File
	stdin     *stdinFeed // delivers stdin and applies CloseStdin in order

	exitCh    chan struct{}
	exitCode  int
	exitSig   int
	exitedAt  time.Time
	oomKilled bool
	outputs   sync.WaitGroup // output copies still running
	reported  chan struct{}  // closed once the exit reached the host
	reportOne sync.Once
}

// createProcess validates req, reserves its stdio ports and records it.
func (s *Server) createProcess(req *agentpb.CreateProcessRequest) error {
	if req.Id == "" {
		return errNoID
	}
	if len(req.Args) == 0 || req.Args[0] == "" {
		return errdefs.InvalidArgument(fmt.Errorf("create process %s: no command (args is empty)", req.Id))
	}
	ports := stdioPorts(req)
	seen := map[uint32]bool{}
	for _, port := range ports {
		if port == transport.AgentPort || seen[port] {
			return errdefs.InvalidArgument(fmt.Errorf("create process %s: stdio port %d is used twice or is the agent port", req.Id, port))
		}
		seen[port] = true
	}
	s.mu.Lock()
	if _, ok := s.procs[req.Id]; ok {
		s.mu.Unlock()
		return errdefs.AlreadyExists(fmt.Errorf("create process %s: a process with that id exists", req.Id))
	}
	if req.ContainerId != "" {
		mainProc := s.procs[req.ContainerId]
		if mainProc == nil || mainProc.req.ContainerId != "" {
			s.mu.Unlock()
			return errdefs.NotFound(fmt.Errorf("create process %s: no such container: %s", req.Id, req.ContainerId))
		}
		if mainProc.exited() {
			s.mu.Unlock()
			return errdefs.Conflict(fmt.Errorf("create process %s: container %s is not running", req.Id, req.ContainerId))
		}
	}
	for _, port := range ports {
		if other, ok := s.ports[port]; ok {
			s.mu.Unlock()
			return errdefs.AlreadyExists(fmt.Errorf("create process %s: stdio port %d is held by process %s", req.Id, port, other))
		}
	}
	p := &process{s: s, id: req.Id, req: req, listeners: map[uint32]net.Listener{}, exitCh: make(chan struct{}), reported: make(chan struct{}), stdin: newStdinFeed()}
	s.procs[req.Id] = p
	for _, port := range ports {
		s.ports[port] = req.Id
	}
	s.mu.Unlock()

	for _, port := range ports {
		l, err := s.cfg.Listener.ListenPort(port)
		if err != nil {
			s.forget(p)
			return fmt.Errorf("create process %s: %w", req.Id, err)
		}
		p.mu.Lock()
		p.listeners[port] = l
		p.mu.Unlock()
	}
	return nil
}

// stdioPorts lists the ports the process's stdio uses.
func stdioPorts(req *agentpb.CreateProcessRequest) []uint32 {
	var ports []uint32
	add := func(p uint32) {
		if p != 0 {
			ports = append(ports, p)
		}
	}
	if req.Tty {
		add(req.TtyPort)
	} else {
		add(req.StdinPort)
		add(req.StdoutPort)
		add(req.StderrPort)
	}
	return ports
}

// forget closes everything p holds and removes it.
func (s *Server) forget(p *process) {
	p.mu.Lock()
	for _, l := range p.listeners {
		l.Close()
	}
	for _, c := range p.conns {
		c.Close()
	}
	for _, c := range p.closers {
		c.Close()
	}
	p.mu.Unlock()
	s.mu.Lock()
	if s.procs[p.id] == p {
		delete(s.procs, p.id)
	}
	for port, id := range s.ports {
		if id == p.id {
			delete(s.ports, port)
		}
	}
	if c := s.containers[p.id]; c != nil && c.id == p.id {
		delete(s.containers, p.id)
	}
	s.mu.Unlock()
}

// startProcess starts p: a new container for a main process, or a process
// in its container's namespaces; it wires the stdio before the process
// runs.
func (s *Server) startProcess(ctx context.Context, id string) (int, error) {
	p, err := s.lookup(id)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	if p.state != stateCreated {
		p.mu.Unlock()
		return 0, errdefs.Conflict(fmt.Errorf("start %s: process was already started", id))
	}
	p.state = stateStarting
	p.mu.Unlock()

	ctr, err := s.containerFor(ctx, p)
	if err != nil {
		p.startFailed(err)
		return 0, err
	}
	stdio, err := p.setupStdio()
	if err != nil {
		p.startFailed(err)
		return 0, fmt.Errorf("start %s: %w", id, err)
	}
	p.mu.Lock()
	p.ctr = ctr
	p.mu.Unlock()
	pid, err := ctr.start(ctx, id, procSpecOf(p.req), stdio)
	closeAll(stdio)
	if err != nil {
		p.startFailed(err)
		if p.req.ContainerId == "" {
			ctr.kill()
		}
		return 0, err
	}
	p.mu.Lock()
	if p.state == stateStarting {
		p.state = stateRunning
	}
	p.pid = pid
	p.mu.Unlock()
	return pid, nil
}

// containerFor starts p's container when p is a main process, or finds
// the running container it execs into.
func (s *Server) containerFor(ctx context.Context, p *process) (*container, error) {
	if p.req.ContainerId == "" {
		c, err := s.startContainer(ctx, p.id, p.req.Hostname, p.req.Privileged)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.containers[p.id] = c
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Lock()
	c := s.containers[p.req.ContainerId]
	s.mu.Unlock()
	if c == nil {
		return nil, errdefs.Conflict(fmt.Errorf("start %s: container %s is not running", p.id, p.req.ContainerId))
	}
	return c, nil
}

// kill ends the container: SIGKILL to its init ends the PID namespace.
func (c *container) kill() {
	unix.Kill(c.pid, unix.SIGKILL)
}

// startFailed records a start that failed: the process counts as exited
// with 127 (command not found) or 126 (could not be run), as a shell
// would report it, so a waiter does not hang.
func (p *process) startFailed(err error) {
	code := 126
	if errors.Is(err, errdefs.ErrNotFound) {
		code = 127
	}
	p.s.logger.Printf("process %s: start failed: %v", p.id, err)
	p.mu.Lock()
	for _, l := range p.listeners {
		l.Close()
	}
	for _, c := range p.closers {
		c.Close()
	}
	p.mu.Unlock()
	p.setExited(code, 0)
}

func procSpecOf(r *agentpb.CreateProcessRequest) *procSpec {
	ps := &procSpec{
		Args: r.Args, Env: r.Env, Cwd: r.Cwd, User: r.User,
		AdditionalGids: r.AdditionalGids, Tty: r.Tty, Main: r.ContainerId == "", Init: r.Init && r.ContainerId == "",
	}
	for _, rl := range r.Rlimits {
		ps.Rlimits = append(ps.Rlimits, rlimitReq{Type: rl.Type, Soft: rl.Soft, Hard: rl.Hard})
	}
	return ps
}

// processExited records an exit reported by a container init.
func (s *Server) processExited(id string, code, sig int) {
	s.mu.Lock()
	p := s.procs[id]
	s.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	running := p.state == stateRunning || p.state == stateStarting
	p.mu.Unlock()
	if running {
		p.setExited(code, sig)
	}
}

// setExited records the exit once, tells the subscribers, and applies the
// shutdown-on-exit policy.
func (p *process) setExited(code, sig int) {
	p.mu.Lock()
	if p.state == stateExited {
		p.mu.Unlock()
		return
	}
	p.state = stateExited
	p.exitCode, p.exitSig, p.exitedAt = code, sig, time.Now()
	close(p.exitCh)
	p.mu.Unlock()
	p.s.publish(&agentpb.Event{Kind: agentpb.Event_EXIT, Id: p.id, ExitCode: int32(code), Signal: int32(sig), AtNs: p.exitedAt.UnixNano()})
	if p.req.ShutdownOnExit && p.req.ContainerId == "" {
		p.s.goSafe("shutdown after "+p.id, p.shutdownAfterExit)
	}
}

// shutdownAfterExit powers the VM off once p's output is flushed and its
// exit has reached the host (or a few seconds have passed).
func (p *process) shutdownAfterExit() {
	flushed := make(chan struct{})
	go func() { p.outputs.Wait(); close(flushed) }()
	select {
	case <-flushed:
	case <-time.After(10 * time.Second):
	}
	select {
	case <-p.reported:
	case <-time.After(5 * time.Second):
	}
	p.mu.Lock()
	code := p.exitCode
	p.mu.Unlock()
	p.s.logger.Printf("main process %s exited with %d: shutting down", p.id, code)
	p.s.requestShutdown(false)
}

func (p *process) exited() bool {
	select {
	case <-p.exitCh:
		return true
	default:
		return false
	}
}

func (p *process) markReported() { p.reportOne.Do(func() { close(p.reported) }) }

// wait blocks until p exits or ctx ends.
func (p *process) wait(ctx context.Context) (*agentpb.WaitProcessResponse, error) {
	select {
	case <-p.exitCh:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for %s: %w", p.id, ctx.Err())
	}
	p.markReported()
	p.mu.Lock()
	defer p.mu.Unlock()
	return &agentpb.WaitProcessResponse{
		ExitCode:   int32(p.exitCode),
		Signal:     int32(p.exitSig),
		OomKilled:  p.oomKilled,
		ExitedAtNs: p.exitedAt.UnixNano(),
	}, nil
}

func (p *process) signal(sig int) error {
	if sig <= 0 || sig > 64 {
		return errdefs.InvalidArgument(fmt.Errorf("signal %s: bad signal number %d", p.id, sig))
	}
	p.mu.Lock()
	state, ctr := p.state, p.ctr
	p.mu.Unlock()
	if state != stateRunning || ctr == nil {
		return errdefs.Conflict(fmt.Errorf("signal %s: process is not running", p.id))
	}
	return ctr.signal(p.id, sig)
}

func (p *process) resize(rows, cols uint32) error {
	p.mu.Lock()
	m := p.ptyMaster
	p.mu.Unlock()
	if !p.req.Tty {
		return errdefs.InvalidArgument(fmt.Errorf("resize %s: process has no tty", p.id))
	}
	if m == nil {
		return errdefs.Conflict(fmt.Errorf("resize %s: process is not started", p.id))
	}
	if rows == 0 || cols == 0 || rows > 0xffff || cols > 0xffff {
		return errdefs.InvalidArgument(fmt.Errorf("resize %s: bad size %dx%d", p.id, cols, rows))
	}
	if err := pty.Setsize(m, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)}); err != nil {
		return fmt.Errorf("resize %s: %w", p.id, err)
	}
	return nil
}

// closeStdin ends the process's input once n bytes of its stdin stream
// have been delivered: EOF on a pipe, ^D on a tty (see stdinFeed). It
// returns at once; before the start it is applied when the input starts.
func (p *process) closeStdin(n uint64) { p.stdin.closeAfter(n) }

func (p *process) delete() error {
	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	if state == stateRunning || state == stateStarting {
		return errdefs.Conflict(fmt.Errorf("delete %s: process is running", p.id))
	}
	p.s.forget(p)
	return nil
}

// track remembers a stdio connection so delete can close it.
func (p *process) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

// accept takes the one connection the host opens to port and stops
// listening there.
func (p *process) accept(port uint32) (net.Conn, error) {
	p.mu.Lock()
	l := p.listeners[port]
	p.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("stdio port %d: not listening", port)
	}
	c, err := l.Accept()
	l.Close()
	if err != nil {
		return nil, err
	}
	p.track(c)
	return c, nil
}
