package container

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/errdefs"
	mobyevents "github.com/moby/moby/api/types/events"
)

// defaultStopTimeout is how long Stop waits after the stop signal when
// neither the request nor the container says.
const defaultStopTimeout = 10 * time.Second

// Stop sends the stop signal (the container's StopSignal, else SIGTERM,
// or sig when given), waits up to timeout (negative: the container's
// StopTimeout, else 10s) for the process to exit, then kills it and,
// failing that, the VM. A start in progress is let finish first; a
// policy restart waiting out its backoff is cancelled. A container that
// is not running is ErrNotModified.
func (m *Manager) Stop(ctx context.Context, ref string, sig string, timeout time.Duration) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	if sig == "" {
		sig = c.spec.Config.StopSignal
	}
	if sig == "" {
		sig = "SIGTERM"
	}
	if timeout < 0 && c.spec.Config.StopTimeout != nil {
		timeout = time.Duration(*c.spec.Config.StopTimeout) * time.Second
	}
	if timeout < 0 {
		timeout = defaultStopTimeout
	}
	c.mu.Lock()
	// A start in progress (a restart by policy, say) is let finish, then
	// stopped.
	if err := c.waitStartLocked(ctx); err != nil {
		return err
	}
	r, exited := c.run, c.exited
	if r == nil && c.cancelRestartLocked() {
		c.state.ManuallyStopped = true
		_ = c.saveStateLocked()
		c.mu.Unlock()
		m.publish(c, mobyevents.ActionStop, nil)
		return nil
	}
	c.mu.Unlock()
	if r == nil {
		return ErrNotModified
	}
	n, err := agent.SignalNumber(sig)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("stop container %s: %w", c.spec.ID[:12], err))
	}
	c.mu.Lock()
	r.killed = true
	c.mu.Unlock()
	if err := r.agent.SignalProcess(ctx, mainProcess, n); err == nil {
		if err := waitExit(ctx, exited, timeout); !errors.Is(err, errExitTimeout) {
			if err == nil {
				m.publish(c, mobyevents.ActionStop, nil)
			}
			return err
		}
	}
	_ = r.agent.SignalProcess(ctx, mainProcess, 9)
	err = waitExit(ctx, exited, m.timeouts.kill)
	if errors.Is(err, errExitTimeout) {
		_ = r.vm.Kill()
		err = waitExit(ctx, exited, -1)
	}
	if err != nil {
		return err
	}
	m.publish(c, mobyevents.ActionStop, nil)
	return nil
}

var errExitTimeout = errors.New("timed out waiting for the exit")

// waitExit waits for exited to close, at most limit (none when negative),
// and not beyond ctx.
func waitExit(ctx context.Context, exited <-chan struct{}, limit time.Duration) error {
	var expired <-chan time.Time
	if limit >= 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-exited:
		return nil
	case <-expired:
		return errExitTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill delivers sig (default SIGKILL) to the main process. A container that
// is not running is a conflict, as with Docker.
func (m *Manager) Kill(ctx context.Context, ref string, sig string) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	if sig == "" {
		sig = "SIGKILL"
	}
	n, err := agent.SignalNumber(sig)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("kill container %s: %w", c.spec.ID[:12], err))
	}
	c.mu.Lock()
	r := c.run
	if r != nil && n == 9 {
		r.killed = true
	}
	if r == nil && c.cancelRestartLocked() {
		c.state.ManuallyStopped = true
		_ = c.saveStateLocked()
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	if r == nil {
		return errdefs.Conflict(fmt.Errorf("cannot kill container: %s: container %s is not running", ref, c.spec.ID))
	}
	if err := r.agent.SignalProcess(ctx, mainProcess, n); err != nil {
		if n == 9 {
			return r.vm.Kill()
		}
		return fmt.Errorf("kill container %s: %w", c.spec.ID[:12], err)
	}
	m.publish(c, mobyevents.ActionKill, map[string]string{"signal": fmt.Sprint(n)})
	return nil
}

// Restart stops the container (if running) and starts it again.
func (m *Manager) Restart(ctx context.Context, ref string, timeout time.Duration) error {
	if err := m.Stop(ctx, ref, "", timeout); err != nil && !errors.Is(err, ErrNotModified) {
		return err
	}
	if err := m.Start(ctx, ref); err != nil && !errors.Is(err, ErrNotModified) {
		return err
	}
	c, err := m.Get(ref)
	if err == nil {
		m.publish(c, mobyevents.ActionRestart, nil)
	}
	return nil
}

// Resize sets the terminal size of the main process.
func (m *Manager) Resize(ctx context.Context, ref string, rows, cols uint32) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	r := c.run
	c.mu.Unlock()
	if r == nil {
		return errdefs.Conflict(fmt.Errorf("cannot resize container %s: it is not running", c.spec.ID[:12]))
	}
	if !r.tty {
		return nil
	}
	return r.agent.ResizePty(ctx, mainProcess, rows, cols)
}

// waitStartLocked waits, with c.mu held on entry, until a start in
// progress has finished (the container runs or the start failed). It
// returns with c.mu held, or unlocked with ctx's error.
func (c *Container) waitStartLocked(ctx context.Context) error {
	for c.run == nil && c.busy == "starting" {
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		c.mu.Lock()
	}
	return nil
}
