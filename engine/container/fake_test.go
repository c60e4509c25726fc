package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/agent/transport/transporttest"
	"github.com/berthvm/berth/engine/vmm"
)

// The fakes below stand in for a container's micro-VM and the guestinit
// agent in it, so the lifecycle runs under `go test -race` without VMs.
// The agent is a real ttrpc agent server over unix sockets
// (transport.Unix), talked to by the real agent client; only what its
// processes do is scripted (fakeProgram) instead of run.

// fakeBoot is how a fake VM boots.
type fakeBoot int

const (
	// bootOK: the agent serves at once.
	bootOK fakeBoot = iota
	// bootDies: the VM stops before its agent serves.
	bootDies
	// bootSilent: the VM runs but its agent never answers.
	bootSilent
)

// fakeLauncher is a fake container.VMLauncher: it boots fakeVMs.
type fakeLauncher struct {
	t *testing.T

	mu       sync.Mutex
	boot     fakeBoot
	requests []LaunchRequest
	vms      []*fakeVM
	// guestNet is what the VMs' Network reports (nil: none); lease is
	// their agent's answer to AcquireLease.
	guestNet *vmm.GuestNetwork
	lease    func() (*agentpb.Lease, error)
}

// Prepare has nothing to prepare: the fake boots no kernel.
func (l *fakeLauncher) Prepare(ctx context.Context) (BootFiles, error) { return BootFiles{}, nil }

func (l *fakeLauncher) Launch(ctx context.Context, req LaunchRequest) (VM, error) {
	dir, err := os.MkdirTemp("", "bf") // short: socket paths are limited
	if err != nil {
		return nil, err
	}
	l.t.Cleanup(func() { os.RemoveAll(dir) })
	l.mu.Lock()
	boot, gn, lease := l.boot, l.guestNet, l.lease
	l.requests = append(l.requests, req)
	l.mu.Unlock()
	vm := &fakeVM{done: make(chan struct{}), net: gn}
	vm.guest = &fakeGuest{vm: vm, tr: transporttest.NewNoHalfClose(transport.NewUnix(dir)), procs: map[string]*fakeProc{}, dead: make(chan struct{}), lease: lease}
	switch boot {
	case bootOK:
		if err := vm.guest.serve(); err != nil {
			return nil, err
		}
	case bootDies:
		go func() {
			time.Sleep(50 * time.Millisecond)
			vm.stop(errors.New("guest kernel panicked"))
		}()
	}
	l.mu.Lock()
	l.vms = append(l.vms, vm)
	l.mu.Unlock()
	l.t.Cleanup(func() { vm.stop(errors.New("test ended")) })
	return vm, nil
}

// last returns the VM launched last.
func (l *fakeLauncher) last() *fakeVM {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.vms) == 0 {
		l.t.Fatal("no VM launched")
	}
	return l.vms[len(l.vms)-1]
}

func (l *fakeLauncher) launched() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.vms)
}

// fakeVM is a fake container.VM.
type fakeVM struct {
	guest *fakeGuest
	net   *vmm.GuestNetwork

	mu      sync.Mutex
	err     error
	killed  bool // Kill was called
	stopped bool
	done    chan struct{}
}

func (v *fakeVM) Dialer() transport.Dialer   { return v.guest.tr }
func (v *fakeVM) Network() *vmm.GuestNetwork { return v.net }
func (v *fakeVM) Pid() int                   { return 4242 }
func (v *fakeVM) Backend() string            { return "fake" }
func (v *fakeVM) Done() <-chan struct{}      { return v.done }

func (v *fakeVM) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

func (v *fakeVM) Kill() error {
	v.mu.Lock()
	v.killed = true
	v.mu.Unlock()
	v.stop(errors.New("killed"))
	return nil
}

func (v *fakeVM) ConsoleTail(n int) string { return "fake console line" }

// SharePort: the fake guest has no spare ports (its launcher gives
// none), so run-time shares take the agent-port path.
func (v *fakeVM) SharePort(i int) (net.Conn, error) {
	return nil, fmt.Errorf("share port %d: the fake VM has none", i)
}

func (v *fakeVM) GuestShare(s vmm.Share) vmm.GuestShare {
	return vmm.GuestShare{Fstype: "fakefs", Source: s.Tag}
}

func (v *fakeVM) wasKilled() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.killed
}

// stop ends the VM with err (nil: a clean power-off): its agent and every
// stdio connection go away, as when a VM stops.
func (v *fakeVM) stop(err error) {
	v.mu.Lock()
	if v.stopped {
		v.mu.Unlock()
		return
	}
	v.stopped = true
	v.err = err
	v.mu.Unlock()
	v.guest.die()
	close(v.done)
}

// fakeGuest is the fake agent: a ttrpc AgentService whose processes run
// fakePrograms.
type fakeGuest struct {
	agentpb.AgentService // calls the container package never makes panic

	vm  *fakeVM
	tr  transporttest.NoHalfClose // unix sockets without half-close, as vz
	srv *ttrpc.Server

	mu      sync.Mutex
	procs   map[string]*fakeProc
	network *agentpb.ConfigureNetworkRequest
	lease   func() (*agentpb.Lease, error)
	mounts  []*agentpb.MountRequest
	dead    chan struct{}
	died    bool
}

func (g *fakeGuest) serve() error {
	l, err := g.tr.ListenPort(transport.AgentPort)
	if err != nil {
		return err
	}
	if g.srv, err = ttrpc.NewServer(); err != nil {
		return err
	}
	agentpb.RegisterAgentService(g.srv, g)
	go g.srv.Serve(context.Background(), l)
	return nil
}

// dropAgent ends the agent's server (and its connections) while the VM
// stays up: the agent became unreachable.
func (g *fakeGuest) dropAgent() {
	if g.srv != nil {
		g.srv.Close()
	}
}

func (g *fakeGuest) die() {
	g.mu.Lock()
	if g.died {
		g.mu.Unlock()
		return
	}
	g.died = true
	close(g.dead)
	procs := g.procs
	g.mu.Unlock()
	g.dropAgent()
	for _, p := range procs {
		p.closeStdio()
	}
}

func (g *fakeGuest) proc(id string) (*fakeProc, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.procs[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no such process: %s", id)
	}
	return p, nil
}

// created returns the request process id was created with.
func (g *fakeGuest) created(t *testing.T, id string) *agentpb.CreateProcessRequest {
	t.Helper()
	p, err := g.proc(id)
	if err != nil {
		t.Fatal(err)
	}
	return p.req
}

func (g *fakeGuest) Ping(context.Context, *agentpb.PingRequest) (*agentpb.PingResponse, error) {
	return &agentpb.PingResponse{Version: "fake"}, nil
}

func (g *fakeGuest) Info(context.Context, *agentpb.InfoRequest) (*agentpb.InfoResponse, error) {
	return &agentpb.InfoResponse{Addresses: []string{"10.0.2.15/24"}, Boot: &agentpb.BootTimes{AgentServingNs: int64(time.Millisecond)}}, nil
}

func (g *fakeGuest) SetTime(context.Context, *agentpb.SetTimeRequest) (*agentpb.Empty, error) {
	return &agentpb.Empty{}, nil
}

func (g *fakeGuest) ConfigureNetwork(_ context.Context, r *agentpb.ConfigureNetworkRequest) (*agentpb.Empty, error) {
	g.mu.Lock()
	g.network = r
	g.mu.Unlock()
	return &agentpb.Empty{}, nil
}

func (g *fakeGuest) AcquireLease(context.Context, *agentpb.LeaseRequest) (*agentpb.Lease, error) {
	if g.lease == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "the fake VM has no DHCP server")
	}
	return g.lease()
}

func (g *fakeGuest) Mount(_ context.Context, r *agentpb.MountRequest) (*agentpb.Empty, error) {
	g.mu.Lock()
	g.mounts = append(g.mounts, r)
	g.mu.Unlock()
	return &agentpb.Empty{}, nil
}

func (g *fakeGuest) Shutdown(context.Context, *agentpb.ShutdownRequest) (*agentpb.Empty, error) {
	// The reply comes before the power-off, as in the guest.
	go func() {
		time.Sleep(10 * time.Millisecond)
		g.vm.stop(nil)
	}()
	return &agentpb.Empty{}, nil
}

func (g *fakeGuest) CreateProcess(_ context.Context, r *agentpb.CreateProcessRequest) (*agentpb.CreateProcessResponse, error) {
	p := &fakeProc{req: r, conns: map[uint32]chan net.Conn{}, signals: make(chan int32, 8), exited: make(chan struct{}), stdin: &fakeStdin{}}
	ports := []uint32{r.StdinPort, r.StdoutPort, r.StderrPort}
	if r.Tty {
		ports = []uint32{r.TtyPort}
	}
	for _, port := range ports {
		if port == 0 {
			continue
		}
		l, err := g.tr.ListenPort(port)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		ch := make(chan net.Conn, 1)
		p.conns[port] = ch
		p.listeners = append(p.listeners, l)
		go func() {
			c, err := l.Accept()
			l.Close()
			if err == nil {
				ch <- c
			}
		}()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.procs[r.Id]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "process %s exists", r.Id)
	}
	g.procs[r.Id] = p
	return &agentpb.CreateProcessResponse{}, nil
}

func (g *fakeGuest) StartProcess(ctx context.Context, r *agentpb.StartProcessRequest) (*agentpb.StartProcessResponse, error) {
	p, err := g.proc(r.Id)
	if err != nil {
		return nil, err
	}
	prog, ok := fakePrograms[p.req.Args[0]]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "exec %s: no such file or directory", p.req.Args[0])
	}
	// The host attached before the start: take its connections.
	fio := fakeIO{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, signals: p.signals, dead: g.dead}
	take := func(port uint32) (net.Conn, error) {
		select {
		case c := <-p.conns[port]:
			p.mu.Lock()
			p.open = append(p.open, c)
			p.mu.Unlock()
			return c, nil
		case <-time.After(5 * time.Second):
			return nil, status.Errorf(codes.FailedPrecondition, "nobody attached to port %d", port)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if p.req.Tty {
		if p.req.TtyPort != 0 {
			c, err := take(p.req.TtyPort)
			if err != nil {
				return nil, err
			}
			fio.stdin, fio.stdout, fio.stderr = c, c, c
		}
	} else {
		for _, s := range []struct {
			port uint32
			set  func(net.Conn)
		}{
			{p.req.StdinPort, func(c net.Conn) { p.stdin.attach(c); fio.stdin = p.stdin }},
			{p.req.StdoutPort, func(c net.Conn) { fio.stdout = c }},
			{p.req.StderrPort, func(c net.Conn) { fio.stderr = c }},
		} {
			if s.port == 0 {
				continue
			}
			c, err := take(s.port)
			if err != nil {
				return nil, err
			}
			s.set(c)
		}
	}
	p.mu.Lock()
	p.started = true
	p.mu.Unlock()
	go func() {
		code := prog(p.req.Args[1:], fio)
		p.closeStdio()
		p.mu.Lock()
		p.status = &agentpb.WaitProcessResponse{ExitCode: code, ExitedAtNs: time.Now().UnixNano()}
		if code > 128 {
			p.status.Signal = code - 128
		}
		p.mu.Unlock()
		close(p.exited)
	}()
	return &agentpb.StartProcessResponse{Pid: 1}, nil
}

func (g *fakeGuest) WaitProcess(ctx context.Context, r *agentpb.WaitProcessRequest) (*agentpb.WaitProcessResponse, error) {
	p, err := g.proc(r.Id)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
		select {
		case <-g.dead: // the process ended with its VM: no one reports it
			return nil, status.Error(codes.Unavailable, "guest gone")
		default:
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.status, nil
	case <-g.dead:
		return nil, status.Error(codes.Unavailable, "guest gone")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *fakeGuest) SignalProcess(_ context.Context, r *agentpb.SignalProcessRequest) (*agentpb.Empty, error) {
	p, err := g.proc(r.Id)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
		return nil, status.Errorf(codes.NotFound, "process %s has exited", r.Id)
	default:
	}
	p.mu.Lock()
	p.received = append(p.received, r.Signal)
	p.mu.Unlock()
	select {
	case p.signals <- r.Signal:
	default:
	}
	return &agentpb.Empty{}, nil
}

// CloseStdin ends the process's stdin after the counted bytes, as the
// guest does; it may come before the start.
func (g *fakeGuest) CloseStdin(_ context.Context, r *agentpb.CloseStdinRequest) (*agentpb.Empty, error) {
	p, err := g.proc(r.Id)
	if err != nil {
		return nil, err
	}
	p.stdin.closeAfter(r.StdinBytes)
	return &agentpb.Empty{}, nil
}

func (g *fakeGuest) ResizePty(context.Context, *agentpb.ResizePtyRequest) (*agentpb.Empty, error) {
	return &agentpb.Empty{}, nil
}

func (g *fakeGuest) DeleteProcess(_ context.Context, r *agentpb.DeleteProcessRequest) (*agentpb.Empty, error) {
	// Kept, so tests can read the request; the IDs are unique anyway.
	return &agentpb.Empty{}, nil
}

func (g *fakeGuest) Stats(context.Context, *agentpb.StatsRequest) (*agentpb.StatsResponse, error) {
	return &agentpb.StatsResponse{Cpus: 2, MemoryTotalBytes: 1 << 30, MemoryUsedBytes: 1 << 20, Pids: 1}, nil
}

// fakeProc is one process in the fake guest.
type fakeProc struct {
	req       *agentpb.CreateProcessRequest
	conns     map[uint32]chan net.Conn // stdio port → the host's connection
	listeners []net.Listener
	signals   chan int32
	exited    chan struct{}

	stdin *fakeStdin // a pipe's stdin, ended in-band by CloseStdin

	mu       sync.Mutex
	open     []net.Conn
	started  bool
	received []int32 // signals, in order
	status   *agentpb.WaitProcessResponse
}

func (p *fakeProc) signalsReceived() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int32(nil), p.received...)
}

// closeStdio closes the process's stdio: the host reads EOF.
func (p *fakeProc) closeStdio() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.open {
		c.Close()
	}
	for _, l := range p.listeners {
		l.Close()
	}
}

// fakeStdin is a fake process's piped stdin: the stdin connection, read
// until CloseStdin's count of bytes, then EOF (the host never
// half-closes). A CloseStdin interrupts a read blocked on the connection
// with a deadline.
type fakeStdin struct {
	mu      sync.Mutex
	c       net.Conn
	read    uint64
	limit   uint64
	closing bool
}

func (s *fakeStdin) attach(c net.Conn) {
	s.mu.Lock()
	s.c = c
	if s.closing {
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
}

func (s *fakeStdin) closeAfter(n uint64) {
	s.mu.Lock()
	s.closing, s.limit = true, n
	if s.c != nil {
		s.c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
}

func (s *fakeStdin) Read(b []byte) (int, error) {
	for {
		s.mu.Lock()
		c := s.c
		if s.closing {
			if s.read >= s.limit {
				s.mu.Unlock()
				return 0, io.EOF
			}
			b = b[:min(uint64(len(b)), s.limit-s.read)]
			c.SetReadDeadline(time.Time{}) // the counted bytes are on their way
		}
		s.mu.Unlock()
		n, err := c.Read(b)
		s.mu.Lock()
		s.read += uint64(n)
		s.mu.Unlock()
		if n > 0 {
			return n, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, err
		}
	}
}

// fakeIO is what a fake program runs with.
type fakeIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	signals        <-chan int32
	dead           <-chan struct{} // closed when the VM stops
}

// fakePrograms are the commands the fake guest can run, by name; any
// other name is "no such file" (exit 127 on the host).
var fakePrograms = map[string]func(args []string, io fakeIO) int32{
	// echo ARGS: prints ARGS on stdout.
	"echo": func(args []string, io fakeIO) int32 {
		fmt.Fprintln(io.stdout, strings.Join(args, " "))
		return 0
	},
	// both: "out" on stdout, then "err" on stderr.
	"both": func(args []string, io fakeIO) int32 {
		fmt.Fprintln(io.stdout, "out")
		fmt.Fprintln(io.stderr, "err")
		return 0
	},
	// exit N: exits with N.
	"exit": func(args []string, _ fakeIO) int32 {
		n, _ := strconv.Atoi(args[0])
		return int32(n)
	},
	// sleep: runs until a signal, and dies of it.
	"sleep": func(_ []string, io fakeIO) int32 {
		select {
		case s := <-io.signals:
			return 128 + s
		case <-io.dead:
			return 137
		}
	},
	// stubborn: ignores every signal but SIGKILL.
	"stubborn": func(_ []string, io fakeIO) int32 {
		for {
			select {
			case s := <-io.signals:
				if s == 9 {
					return 137
				}
			case <-io.dead:
				return 137
			}
		}
	},
	// immortal: ignores every signal (a process stuck in the kernel).
	"immortal": func(_ []string, io fakeIO) int32 {
		<-io.dead
		return 137
	},
	// tee2: copies stdin to both stdout and stderr until EOF.
	"tee2": func(_ []string, fio fakeIO) int32 {
		_, _ = io.Copy(io.MultiWriter(fio.stdout, fio.stderr), fio.stdin)
		return 0
	},
}
