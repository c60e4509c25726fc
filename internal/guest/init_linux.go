package guest

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/errdefs"
)

// containerInitArg0 is argv[0] of a container init; ps in the container
// shows it as PID 1.
const containerInitArg0 = "berth-init"

// ctlFd is the control socket's descriptor in the container init.
const ctlFd = 3

// RunIfContainerInit runs the container init and exits when this process
// was started as one (argv[0] is "berth-init"); otherwise it returns at
// once. Call it first in main and in TestMain of packages that start
// containers.
func RunIfContainerInit() {
	if filepath.Base(os.Args[0]) == mainStageArg0 {
		runMainStage()
	}
	if filepath.Base(os.Args[0]) != containerInitArg0 {
		return
	}
	// ps shows the main thread's name: make it ours, not the binary's.
	os.WriteFile("/proc/self/comm", []byte(containerInitArg0), 0)
	debug.SetGCPercent(25)
	debug.SetMemoryLimit(16 << 20)
	logger := log.New(os.Stderr, "berth-init: ", log.LstdFlags|log.Lmicroseconds)
	if err := containerInit(logger); err != nil {
		logger.Print(err)
		os.Exit(1)
	}
	os.Exit(0)
}

// containerInit receives the init message, prepares the namespaces and
// serves start and signal requests until the main process exits. See the
// package comment for the steps.
func containerInit(logger *log.Logger) error {
	ctl, err := fileCtl(os.NewFile(ctlFd, "ctl"))
	if err != nil {
		return err
	}
	m, files, err := ctl.recv()
	closeAll(files)
	if err != nil {
		return fmt.Errorf("read init message: %w", err)
	}
	if m.Op != opInit || m.Init == nil {
		return fmt.Errorf("read init message: got %q", m.Op)
	}
	if err := setupContainer(m.Init); err != nil {
		ctl.send(errorMsg("", err))
		return err
	}
	sv := &initServer{ctl: ctl, logger: logger, procs: map[int]string{}}
	if err := ctl.send(&ctlMsg{Op: opReady}); err != nil {
		return err
	}
	return sv.serve()
}

// initServer is the container init's request loop and reaper.
type initServer struct {
	ctl    *ctlConn
	logger *log.Logger

	mu      sync.Mutex // held across fork+record, and by the reaper
	procs   map[int]string
	mainPid int
	mainID  string
	done    bool
}

// serve runs the reaper and signal forwarder, and answers requests until
// the main process has exited and everything left is reaped.
func (s *initServer) serve() error {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	go s.requests()
	for sig := range sigs {
		ss, ok := sig.(syscall.Signal)
		if !ok {
			continue
		}
		switch ss {
		case unix.SIGCHLD:
			if s.reap() {
				return nil
			}
		case unix.SIGURG, unix.SIGPIPE:
			// Go's preemption signal; broken pipes are the writer's concern.
		default:
			s.forward(ss)
		}
	}
	return nil
}

// forward sends sig, which the init received, to the main process.
func (s *initServer) forward(sig syscall.Signal) {
	s.mu.Lock()
	pid := s.mainPid
	s.mu.Unlock()
	if pid > 0 {
		unix.Kill(pid, sig)
	}
}

// reap collects every exited child, reports the ones guestinit started,
// and, once the main process is gone, kills and reaps the rest. It reports
// true when the init should exit.
func (s *initServer) reap() bool {
	_, err := reapExited(func(pid int, ws unix.WaitStatus) bool {
		s.mu.Lock()
		id, known := s.procs[pid]
		delete(s.procs, pid)
		isMain := pid == s.mainPid
		if isMain {
			s.done = true
		}
		s.mu.Unlock()
		if known {
			code, sig := exitCode(ws)
			s.ctl.send(&ctlMsg{Op: opExit, ID: id, ExitCode: code, Sig: sig})
		}
		if isMain {
			// The container ends with its main process: end the rest.
			unix.Kill(-1, unix.SIGKILL)
		}
		return false
	})
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	// ECHILD with the main process gone: nothing is left.
	return done && errors.Is(err, unix.ECHILD)
}

// reapExited collects, without blocking, every child that has exited,
// calling exited for each until it returns true (stopped). Otherwise it
// returns once no exited child is left, with wait4's answer then: nil
// while children still run, ECHILD when there are none.
func reapExited(exited func(pid int, ws unix.WaitStatus) bool) (stopped bool, err error) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return false, err
		}
		if exited(pid, ws) {
			return true, nil
		}
	}
}

// exitCode is a wait status as a shell reports it: the exit status, or
// 128+n for a death by signal n.
func exitCode(ws unix.WaitStatus) (code, sig int) {
	switch {
	case ws.Exited():
		return ws.ExitStatus(), 0
	case ws.Signaled():
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return 255, 0
}

// requests answers guestinit's start and signal requests. When the
// control socket ends, guestinit is gone: the container ends too.
func (s *initServer) requests() {
	for {
		m, files, err := s.ctl.recv()
		if err != nil {
			s.logger.Printf("control socket: %v; ending the container", err)
			unix.Kill(-1, unix.SIGKILL)
			os.Exit(1)
		}
		switch m.Op {
		case opStart:
			s.start(m, files)
		case opSignal:
			closeAll(files)
			s.signal(m)
		default:
			closeAll(files)
			s.ctl.send(errorMsg(m.ID, errdefs.InvalidArgument(fmt.Errorf("unknown control operation %q", m.Op))))
		}
	}
}

func (s *initServer) signal(m *ctlMsg) {
	s.mu.Lock()
	pid := 0
	for p, id := range s.procs {
		if id == m.ID {
			pid = p
		}
	}
	s.mu.Unlock()
	if pid == 0 {
		return
	}
	if err := unix.Kill(pid, syscall.Signal(m.Sig)); err != nil && !errors.Is(err, unix.ESRCH) {
		s.logger.Printf("signal %d to %s (pid %d): %v", m.Sig, m.ID, pid, err)
	}
}

// start starts one process and answers opStarted or opError.
func (s *initServer) start(m *ctlMsg, files []*os.File) {
	defer closeAll(files)
	err := s.startProcess(m.ID, m.Proc, files)
	if err != nil {
		s.ctl.send(errorMsg(m.ID, err))
	}
}

// startProcess starts the process and sends opStarted. Both happen under
// s.mu, so that the reaper reports its exit only after that.
func (s *initServer) startProcess(id string, p *procSpec, files []*os.File) error {
	path, attr, err := prepareExec(id, p, files)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errdefs.Conflict(fmt.Errorf("start %s: the container is not running: its main process has exited", id))
	}
	restore, err := applyRlimits(p.Rlimits)
	if err != nil {
		return err
	}
	var pid int
	if p.Main {
		pid, err = spawnMain(path, p.Args, attr, p.Init)
	} else {
		pid, err = spawnInContainer(path, p.Args, attr)
	}
	restore()
	if err != nil {
		return fmt.Errorf("start %s: exec %q: %w", id, p.Args[0], err)
	}
	s.procs[pid] = id
	if p.Main {
		s.mainPid, s.mainID = pid, id
	}
	s.ctl.send(&ctlMsg{Op: opStarted, ID: id, Pid: pid})
	return nil
}
