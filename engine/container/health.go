package container

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobyevents "github.com/moby/moby/api/types/events"
)

// Health checks (HEALTHCHECK in the image, docker run --health-*,
// compose healthcheck:), as Docker runs them: while the container runs,
// its probe runs in the container every interval (start interval during
// the start period) through the agent, as an exec does; a probe that
// exits 0 makes the container healthy, retries failures in a row
// unhealthy (failures in the start period do not count until it was
// healthy once); one that outlives its timeout is killed and fails. The
// last five results, with up to 4 KiB of output each, are kept in
// State.Health; each change of status publishes "health_status: STATUS".
// When the run ends the status becomes unhealthy, as in Docker.

// Docker's defaults and limits.
const (
	healthDefaultInterval      = 30 * time.Second
	healthDefaultTimeout       = 30 * time.Second
	healthDefaultStartInterval = 5 * time.Second
	healthDefaultRetries       = 3
	healthLogEntries           = 5
	healthMaxOutput            = 4096
)

// healthConfig is the probe c's spec asks for, with Docker's defaults
// filled in; nil when it has none (no Test, or NONE).
func healthConfig(cfg *mobycontainer.Config) *mobycontainer.HealthConfig {
	if cfg == nil || cfg.Healthcheck == nil || len(cfg.Healthcheck.Test) == 0 {
		return nil
	}
	hc := *cfg.Healthcheck
	switch hc.Test[0] {
	case "CMD", "CMD-SHELL":
		if len(hc.Test) < 2 {
			return nil
		}
	default:
		return nil // NONE, or a form Docker does not run either
	}
	if hc.Interval <= 0 {
		hc.Interval = healthDefaultInterval
	}
	if hc.Timeout <= 0 {
		hc.Timeout = healthDefaultTimeout
	}
	if hc.StartInterval <= 0 {
		hc.StartInterval = healthDefaultStartInterval
	}
	if hc.Retries <= 0 {
		hc.Retries = healthDefaultRetries
	}
	return &hc
}

// mergeHealthcheck fills what the request leaves out of its health
// check from the image's (Docker's merge).
func mergeHealthcheck(req *mobycontainer.HealthConfig, img *mobycontainer.HealthConfig) *mobycontainer.HealthConfig {
	if img == nil {
		return req
	}
	if req == nil {
		c := *img
		return &c
	}
	out := *req
	if len(out.Test) == 0 {
		out.Test = img.Test
	}
	if out.Interval == 0 {
		out.Interval = img.Interval
	}
	if out.Timeout == 0 {
		out.Timeout = img.Timeout
	}
	if out.StartPeriod == 0 {
		out.StartPeriod = img.StartPeriod
	}
	if out.StartInterval == 0 {
		out.StartInterval = img.StartInterval
	}
	if out.Retries == 0 {
		out.Retries = img.Retries
	}
	return &out
}

// probeArgs is the probe's command line.
func probeArgs(test []string) []string {
	if test[0] == "CMD-SHELL" {
		return []string{"/bin/sh", "-c", test[1]}
	}
	return test[1:]
}

// monitorHealth runs c's probe while run r lasts (until exited closes).
func (m *Manager) monitorHealth(c *Container, r *running, hc *mobycontainer.HealthConfig, exited <-chan struct{}) {
	started := time.Now()
	for {
		c.mu.Lock()
		starting := c.state.Health != nil && c.state.Health.Status == mobycontainer.Starting
		c.mu.Unlock()
		wait := hc.Interval
		if starting && time.Since(started) < hc.StartPeriod {
			wait = hc.StartInterval
		}
		select {
		case <-exited:
			return
		case <-time.After(wait):
		}
		res := m.probe(c, r, hc)
		c.mu.Lock()
		if c.run != r {
			c.mu.Unlock()
			return
		}
		old := c.state.Health
		h := &mobycontainer.Health{Status: old.Status, FailingStreak: old.FailingStreak}
		h.Log = append(append(h.Log, old.Log...), res)
		if n := len(h.Log); n > healthLogEntries {
			h.Log = h.Log[n-healthLogEntries:]
		}
		switch {
		case res.ExitCode == 0:
			h.FailingStreak = 0
			h.Status = mobycontainer.Healthy
		case h.Status == mobycontainer.Starting && time.Since(started) < hc.StartPeriod:
			// Failures in the start period do not count.
		default:
			h.FailingStreak++
			if h.FailingStreak >= hc.Retries {
				h.Status = mobycontainer.Unhealthy
			}
		}
		c.state.Health = h
		_ = c.saveStateLocked()
		if h.Status != old.Status {
			m.events.Publish(c.eventLocked(mobyevents.Action("health_status: "+string(h.Status)), nil))
		}
		c.mu.Unlock()
	}
}

// probe runs the health check once in the running container.
func (m *Manager) probe(c *Container, r *running, hc *mobycontainer.HealthConfig) *mobycontainer.HealthcheckResult {
	res := &mobycontainer.HealthcheckResult{Start: time.Now().UTC()}
	out := &cappedBuffer{max: healthMaxOutput}
	code, err := runProbe(r.agent, &agentpb.CreateProcessRequest{
		Id:          "health-" + NewID()[:16],
		ContainerId: mainProcess,
		Args:        probeArgs(hc.Test),
		Env:         withDefaultEnv(c.spec.Config.Env, c.spec.Config.Hostname, false),
		Cwd:         c.spec.Config.WorkingDir,
		User:        c.spec.Config.User,
	}, out, hc.Timeout)
	res.End = time.Now().UTC()
	res.ExitCode = code
	res.Output = out.String()
	if err != nil {
		res.Output = err.Error()
	}
	return res
}

// runProbe runs r with stdout and stderr into out, killing it after
// timeout (exit code -1, Docker's message).
func runProbe(a *agent.Client, r *agentpb.CreateProcessRequest, out *cappedBuffer, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	stdio := agent.Stdio{Stdout: out, Stderr: out}
	a.AssignPorts(r, stdio)
	if err := a.CreateProcess(ctx, r); err != nil {
		return -1, fmt.Errorf("health check: %w", err)
	}
	defer a.DeleteProcess(context.WithoutCancel(ctx), r.Id)
	att, err := a.Attach(ctx, r, stdio)
	if err != nil {
		return -1, fmt.Errorf("health check: %w", err)
	}
	defer att.Close()
	if _, err := a.StartProcess(ctx, r.Id); err != nil {
		return -1, fmt.Errorf("health check: %w", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, timeout)
	st, err := a.WaitProcess(wctx, r.Id)
	wcancel()
	if err != nil {
		_ = a.SignalProcess(ctx, r.Id, 9)
		_, _ = a.WaitProcess(ctx, r.Id)
		return -1, fmt.Errorf("Health check exceeded timeout (%v)", timeout)
	}
	_ = att.Wait()
	return st.Code, nil
}

// cappedBuffer keeps the first max bytes written to it.
type cappedBuffer struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}
