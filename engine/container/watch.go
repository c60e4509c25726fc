package container

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/berthvm/berth/engine/agent"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobyevents "github.com/moby/moby/api/types/events"
)

// runExit is how a run ended.
type runExit struct {
	code int
	oom  bool
	// reason is the error the state records, unless the engine ended the
	// run on purpose (running.killed).
	reason string
}

// watch waits for the main process (or the VM) to end, powers the VM
// off, records the exit and removes an --rm container. It runs detached
// from the request that started the container: a run ends when its
// process or VM does, and watch with it.
func (m *Manager) watch(c *Container, r *running) {
	ex := r.wait(m.timeouts, m.log.With("container", c.spec.ID[:12]))
	r.stdio.Close()
	r.shares.closeAll()
	r.agent.Close()
	if r.net != nil {
		r.net.Close()
	}
	m.recordExit(c, r, ex)
}

// wait returns once the run is over and its VM stopped: after the main
// process exited it lets the output drain, asks the guest to power off
// and kills the VM if it does not; after the VM died it returns at once.
func (r *running) wait(to timeouts, log *slog.Logger) runExit {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		st  agent.ExitStatus
		err error
	}
	waited := make(chan result, 1)
	go func() {
		st, err := r.agent.WaitProcess(ctx, mainProcess)
		waited <- result{st, err}
	}()
	var ex runExit
	select {
	case <-r.vm.Done():
		return runExit{code: 137, reason: r.vmStopReason()}
	case res := <-waited:
		ex = runExit{code: res.st.Code, oom: res.st.OOMKilled}
		if res.err != nil {
			ex = runExit{code: 137, reason: fmt.Sprintf("lost the agent: %v", res.err)}
			// The usual cause: the VM itself is gone.
			select {
			case <-r.vm.Done():
				ex.reason = r.vmStopReason()
			case <-time.After(to.lostAgent):
			}
		}
	}
	r.drain(to.drain)
	r.powerOff(to, log)
	return ex
}

// drain waits (up to limit) for the guest to close the output streams:
// all output is in then.
func (r *running) drain(limit time.Duration) {
	outDone := make(chan struct{})
	go func() { r.stdio.Wait(); close(outDone) }() // ends at the latest when watch closes the streams
	select {
	case <-outDone:
	case <-r.vm.Done():
	case <-time.After(limit):
	}
}

// powerOff asks the guest to power off and kills the VM when it has not
// within the timeout. A run whose disk is thrown away after it
// (r.disposable, and no share was mounted since) has its VM killed at once: a clean power-off (sync,
// unmount) would only save what is deleted next.
func (r *running) powerOff(to timeouts, log *slog.Logger) {
	if r.disposable && !r.shares.used() {
		_ = r.vm.Kill()
		<-r.vm.Done()
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), to.lostAgent)
	_ = r.agent.Shutdown(sctx, false)
	cancel()
	select {
	case <-r.vm.Done():
	case <-time.After(to.powerOff):
		log.Warn("VM did not power off; killing it")
		_ = r.vm.Kill()
		<-r.vm.Done()
	}
}

// vmStopReason says why the VM stopped, with its console's last lines.
func (r *running) vmStopReason() string {
	reason := "the VM powered off"
	if err := r.vm.Err(); err != nil {
		reason = fmt.Sprintf("the VM stopped: %v", err)
	}
	return reason + "\nconsole:\n" + r.vm.ConsoleTail(20)
}

// recordExit ends run r of c. It ends attached clients and the log while
// the run is still published (so no start can begin a new one meanwhile;
// a slow client may hold the output's lock, never c's); then, in one hold
// of c's lock, it records the exit, renews stdin for the next run
// (clients still writing get an error) and publishes die; then it
// forgets the run's execs (the Manager's lock is never taken under c's),
// wakes waiters and removes an --rm container.
func (m *Manager) recordExit(c *Container, r *running, ex runExit) {
	c.out.finish()
	c.mu.Lock()
	c.run = nil
	c.state.Status = mobycontainer.StateExited
	c.state.ExitCode = ex.code
	c.state.OOMKilled = ex.oom
	c.state.Error = ""
	if !r.killed {
		c.state.Error = ex.reason
	}
	c.state.FinishedAt = time.Now().UTC()
	c.state.Pid = 0
	c.state.Ports = nil
	c.state.ManuallyStopped = r.killed
	if h := c.state.Health; h != nil {
		// Docker's: a health check that stopped monitoring is unhealthy.
		c.state.Health = &mobycontainer.Health{Status: mobycontainer.Unhealthy, FailingStreak: h.FailingStreak, Log: h.Log}
	}
	_ = c.saveStateLocked()
	execs := c.execs
	c.execs = map[string]*Exec{}
	c.stdin.Close()
	c.stdin = newInputPipe()
	m.events.Publish(c.eventLocked(mobyevents.ActionDie, map[string]string{"exitCode": fmt.Sprint(ex.code)}))
	exited := c.exited
	autoRemove := c.spec.HostConfig.AutoRemove
	if !autoRemove && !m.closed.Load() && c.shouldRestartLocked(ex.code, r.killed) {
		m.scheduleRestartLocked(c, c.state.FinishedAt.Sub(c.state.StartedAt))
	}
	c.mu.Unlock()
	m.forgetExecs(execs)
	close(exited)
	if autoRemove {
		if err := m.removeStopped(c, true); err != nil {
			m.log.Error("auto-remove", "container", c.spec.ID[:12], "err", err)
		}
	}
}
