package container

import (
	"context"
	"fmt"
	"time"

	mobycontainer "github.com/moby/moby/api/types/container"
)

// Restart policies (docker run --restart, compose restart:), as Docker
// applies them: after the main process exits, no never restarts;
// always and unless-stopped do unless the container was stopped (docker
// stop, docker kill); on-failure[:N] does after a non-zero exit, at most
// N times (0: no limit). Restarts wait Docker's backoff, 100 ms doubled
// each time up to a minute, back to 100 ms after a run of 10 s or more;
// the container is "restarting" meanwhile, and a stop, kill, start or
// remove cancels the wait. When the engine starts, always containers
// that ever started come back, and unless-stopped ones unless they were
// stopped.

// restartToken is one pending policy restart; its timer (set under the
// container's lock) starts the container with it.
type restartToken struct{ timer *time.Timer }

// engineStart is the token of StartRestartable's starts.
var engineStart = &restartToken{}

// Docker's restart manager's backoff.
const (
	restartFirstDelay = 100 * time.Millisecond
	restartMaxDelay   = time.Minute
	// restartResetAfter is the run after which the delay starts over.
	restartResetAfter = 10 * time.Second
)

// shouldRestartLocked says whether c restarts after an exit with code;
// manual is a stop or kill asked for by a user.
func (c *Container) shouldRestartLocked(code int, manual bool) bool {
	if manual || c.spec.HostConfig == nil {
		return false
	}
	p := c.spec.HostConfig.RestartPolicy
	switch p.Name {
	case mobycontainer.RestartPolicyAlways, mobycontainer.RestartPolicyUnlessStopped:
		return true
	case mobycontainer.RestartPolicyOnFailure:
		return code != 0 && (p.MaximumRetryCount == 0 || c.state.RestartCount < p.MaximumRetryCount)
	}
	return false
}

// scheduleRestartLocked marks c restarting and starts it again after the
// backoff. ran is how long the run that ended lasted.
func (m *Manager) scheduleRestartLocked(c *Container, ran time.Duration) {
	switch {
	case ran >= restartResetAfter || c.restartDelay == 0:
		c.restartDelay = restartFirstDelay
	default:
		c.restartDelay = min(c.restartDelay*2, restartMaxDelay)
	}
	c.state.Status = mobycontainer.StateRestarting
	_ = c.saveStateLocked()
	tok := &restartToken{}
	tok.timer = time.AfterFunc(c.restartDelay, func() {
		m.goPolicy(context.Background(), 5*time.Minute, func(ctx context.Context) {
			if err := m.startWith(ctx, c, tok); err != nil {
				m.log.Warn("restart by policy failed", "container", c.spec.ID[:12], "err", err)
			}
		})
	})
	c.pendingRestart = tok
}

// cancelRestartLocked stops a pending policy restart; the container is
// then exited. It reports whether one was pending.
func (c *Container) cancelRestartLocked() bool {
	if c.pendingRestart == nil {
		return false
	}
	c.pendingRestart.timer.Stop()
	c.pendingRestart = nil
	c.state.Status = mobycontainer.StateExited
	_ = c.saveStateLocked()
	return true
}

// StartRestartable starts, in the background, the containers an engine
// start brings back: always ones that ever started, and unless-stopped
// ones that were not stopped by a user. It returns at once; the starts
// end with ctx.
func (m *Manager) StartRestartable(ctx context.Context) {
	m.mu.Lock()
	var todo []*Container
	for _, c := range m.byID {
		c.mu.Lock()
		p := ""
		if c.spec.HostConfig != nil {
			p = string(c.spec.HostConfig.RestartPolicy.Name)
		}
		started := !c.state.StartedAt.IsZero()
		if c.run == nil && started && (p == string(mobycontainer.RestartPolicyAlways) ||
			p == string(mobycontainer.RestartPolicyUnlessStopped) && !c.state.ManuallyStopped) {
			todo = append(todo, c)
		}
		c.mu.Unlock()
	}
	m.mu.Unlock()
	for _, c := range todo {
		go m.goPolicy(ctx, 0, func(ctx context.Context) {
			if err := m.startWith(ctx, c, engineStart); err != nil {
				m.log.Warn("restart at engine start failed", "container", c.spec.ID[:12], "err", err)
			}
		})
	}
}

// goPolicy runs start, a policy start, under a context that ends with
// parent, with Close, and after timeout (0: none), unless the Manager is
// closed; Close waits for it.
func (m *Manager) goPolicy(parent context.Context, timeout time.Duration, start func(context.Context)) {
	m.bgMu.Lock()
	if m.closed.Load() {
		m.bgMu.Unlock()
		return
	}
	m.policy.Add(1)
	m.bgMu.Unlock()
	defer m.policy.Done()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()
	if timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, timeout)
		defer cancelT()
	}
	start(ctx)
}

// Close stops scheduling restarts, cancels the pending ones and the
// policy starts under way, and waits for those to end, so that no start
// by policy begins or saves state after Close returns.
func (m *Manager) Close() {
	m.bgMu.Lock()
	m.closed.Store(true)
	m.bgMu.Unlock()
	m.cancel()
	m.mu.Lock()
	for _, c := range m.byID {
		c.mu.Lock()
		c.cancelRestartLocked()
		c.mu.Unlock()
	}
	m.mu.Unlock()
	m.policy.Wait()
}

// checkRestartPolicy validates a create request's restart policy as
// Docker does.
func checkRestartPolicy(p mobycontainer.RestartPolicy, autoRemove bool) error {
	switch p.Name {
	case "", mobycontainer.RestartPolicyDisabled:
		if p.MaximumRetryCount != 0 {
			return fmt.Errorf("invalid restart policy: maximum retry count can only be used with 'on-failure'")
		}
		return nil
	case mobycontainer.RestartPolicyAlways, mobycontainer.RestartPolicyUnlessStopped:
		if p.MaximumRetryCount != 0 {
			return fmt.Errorf("invalid restart policy: maximum retry count can only be used with 'on-failure'")
		}
	case mobycontainer.RestartPolicyOnFailure:
		if p.MaximumRetryCount < 0 {
			return fmt.Errorf("invalid restart policy: maximum retry count cannot be negative")
		}
	default:
		return fmt.Errorf("invalid restart policy: unknown policy '%s'; use one of 'no', 'always', 'unless-stopped', or 'on-failure'", p.Name)
	}
	if autoRemove {
		return fmt.Errorf("can't create 'AutoRemove' container with restart policy")
	}
	return nil
}
