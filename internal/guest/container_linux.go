package guest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/errdefs"
)

// container is guestinit's handle on one container init.
type container struct {
	s   *Server
	id  string // the main process's ID
	ctl *ctlConn
	pid int // the init's pid in guestinit's PID namespace
	// cgroup is the container's cgroup directory (containerCgroup), ""
	// when it has none; removed once the init is reaped.
	cgroup string

	mu      sync.Mutex
	waiters map[string]chan *ctlMsg
	gone    bool
	goneCh  chan struct{}
	once    sync.Once
}

// initReadyTimeout bounds the container init's setup.
const initReadyTimeout = 30 * time.Second

// startContainer re-executes this program as a container init in new
// mount, PID, UTS, IPC and cgroup namespaces, in a cgroup of its own
// (containerCgroup), and waits until it has pivoted into the rootfs.
func (s *Server) startContainer(ctx context.Context, id, hostname string, privileged bool) (*container, error) {
	ctl, child, err := newCtlPair()
	if err != nil {
		return nil, err
	}
	defer child.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		ctl.close()
		return nil, fmt.Errorf("start container %s: %w", id, err)
	}
	defer devnull.Close()
	cgroup, cgfd, err := s.containerCgroup(id)
	if err != nil {
		ctl.close()
		return nil, fmt.Errorf("start container %s: %w", id, err)
	}
	attr := &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{"PATH=" + defaultPath},
		Files: []uintptr{devnull.Fd(), os.Stderr.Fd(), os.Stderr.Fd(), child.Fd()},
		Sys: &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP,
			Pdeathsig:  unix.SIGKILL,
		},
	}
	if cgfd >= 0 {
		attr.Sys.UseCgroupFD, attr.Sys.CgroupFD = true, cgfd
	}
	s.mu.Lock() // the reaper must not miss this pid
	pid, err := syscall.ForkExec("/proc/self/exe", []string{containerInitArg0}, attr)
	if cgfd >= 0 {
		unix.Close(cgfd)
	}
	if err != nil {
		s.mu.Unlock()
		ctl.close()
		if cgroup != "" {
			removeCgroup(cgroup)
		}
		return nil, fmt.Errorf("start container %s: start its init: %w", id, err)
	}
	c := &container{s: s, id: id, ctl: ctl, pid: pid, cgroup: cgroup, waiters: map[string]chan *ctlMsg{}, goneCh: make(chan struct{})}
	s.inits[pid] = c
	s.mu.Unlock()

	if err := c.handshake(ctx, hostname, privileged); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		ctl.close()
		return nil, fmt.Errorf("start container %s: %w", id, err)
	}
	s.goSafe("container "+id+" control", c.readLoop)
	return c, nil
}

// handshake sends the init message and waits for the init to be ready.
func (c *container) handshake(ctx context.Context, hostname string, privileged bool) error {
	if err := c.ctl.send(&ctlMsg{Op: opInit, Init: &initSpec{Rootfs: c.s.cfg.Rootfs, Hostname: hostname, StageExe: c.s.cfg.StageExe, Privileged: privileged}}); err != nil {
		return err
	}
	dl := time.Now().Add(initReadyTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.ctl.c.SetReadDeadline(dl)
	defer c.ctl.c.SetReadDeadline(time.Time{})
	m, files, err := c.ctl.recv()
	closeAll(files)
	if err != nil {
		return fmt.Errorf("wait for the container init: %w", err)
	}
	switch m.Op {
	case opReady:
		return nil
	case opError:
		return fmt.Errorf("container init: %w", m.err())
	}
	return fmt.Errorf("container init answered %q", m.Op)
}

// readLoop dispatches the init's answers and exit reports until the
// control socket ends, then marks the container gone.
func (c *container) readLoop() {
	defer c.initGone()
	for {
		m, files, err := c.ctl.recv()
		closeAll(files)
		if err != nil {
			return
		}
		switch m.Op {
		case opExit:
			c.s.processExited(m.ID, m.ExitCode, m.Sig)
		case opStarted, opError:
			c.mu.Lock()
			ch := c.waiters[m.ID]
			delete(c.waiters, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}
}

// initGone records that the init is gone: every process of the container
// not yet reported is taken to have been killed (137), as the kernel
// killed the whole PID namespace.
func (c *container) initGone() {
	c.once.Do(func() {
		c.mu.Lock()
		c.gone = true
		for id, ch := range c.waiters {
			ch <- errorMsg(id, errdefs.Conflict(fmt.Errorf("start %s: container %s is not running (its init exited)", id, c.id)))
		}
		c.waiters = map[string]chan *ctlMsg{}
		c.mu.Unlock()
		close(c.goneCh)
		c.ctl.close()
		c.s.containerGone(c)
	})
}

// start asks the init to start a process with the given stdio files and
// waits for its answer.
func (c *container) start(ctx context.Context, id string, spec *procSpec, stdio []*os.File) (int, error) {
	ch := make(chan *ctlMsg, 1)
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return 0, errdefs.Conflict(fmt.Errorf("start %s: container %s is not running", id, c.id))
	}
	c.waiters[id] = ch
	c.mu.Unlock()
	if err := c.ctl.send(&ctlMsg{Op: opStart, ID: id, Proc: spec}, stdio...); err != nil {
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
		return 0, fmt.Errorf("start %s: %w", id, err)
	}
	select {
	case m := <-ch:
		if m.Op == opStarted {
			return m.Pid, nil
		}
		return 0, m.err()
	case <-ctx.Done():
		return 0, fmt.Errorf("start %s: %w", id, ctx.Err())
	}
}

// signal asks the init to deliver sig to process id.
func (c *container) signal(id string, sig int) error {
	c.mu.Lock()
	gone := c.gone
	c.mu.Unlock()
	if gone {
		return errdefs.Conflict(fmt.Errorf("signal %s: container %s is not running", id, c.id))
	}
	return c.ctl.send(&ctlMsg{Op: opSignal, ID: id, Sig: sig})
}

// containerGone marks every unreported process of c as killed.
func (s *Server) containerGone(c *container) {
	s.mu.Lock()
	if s.containers[c.id] == c {
		delete(s.containers, c.id)
	}
	procs := make(map[string]*process, len(s.procs))
	maps.Copy(procs, s.procs)
	s.mu.Unlock()
	for id, p := range procs {
		p.mu.Lock() // p.ctr is p's, set under p.mu
		in := p.ctr == c
		p.mu.Unlock()
		if in {
			s.processExited(id, 128+int(unix.SIGKILL), int(unix.SIGKILL))
		}
	}
}
