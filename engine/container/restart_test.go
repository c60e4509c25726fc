package container

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	mobycontainer "github.com/moby/moby/api/types/container"
)

func TestShouldRestart(t *testing.T) {
	for _, tc := range []struct {
		policy   mobycontainer.RestartPolicy
		count    int
		code     int
		manual   bool
		restarts bool
	}{
		{mobycontainer.RestartPolicy{Name: "no"}, 0, 1, false, false},
		{mobycontainer.RestartPolicy{}, 0, 1, false, false},
		{mobycontainer.RestartPolicy{Name: "always"}, 5, 0, false, true},
		{mobycontainer.RestartPolicy{Name: "always"}, 0, 137, true, false},
		{mobycontainer.RestartPolicy{Name: "unless-stopped"}, 0, 0, false, true},
		{mobycontainer.RestartPolicy{Name: "unless-stopped"}, 0, 0, true, false},
		{mobycontainer.RestartPolicy{Name: "on-failure"}, 9, 1, false, true},
		{mobycontainer.RestartPolicy{Name: "on-failure"}, 0, 0, false, false},
		{mobycontainer.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}, 1, 3, false, true},
		{mobycontainer.RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}, 2, 3, false, false},
	} {
		c := &Container{spec: Spec{HostConfig: &mobycontainer.HostConfig{RestartPolicy: tc.policy}}, state: State{RestartCount: tc.count}}
		if got := c.shouldRestartLocked(tc.code, tc.manual); got != tc.restarts {
			t.Errorf("%+v after %d restarts, exit %d, manual %v: restart %v, want %v", tc.policy, tc.count, tc.code, tc.manual, got, tc.restarts)
		}
	}
}

func TestCheckRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		p          mobycontainer.RestartPolicy
		autoRemove bool
		err        string
	}{
		{mobycontainer.RestartPolicy{}, true, ""},
		{mobycontainer.RestartPolicy{Name: "no"}, true, ""},
		{mobycontainer.RestartPolicy{Name: "always"}, false, ""},
		{mobycontainer.RestartPolicy{Name: "on-failure", MaximumRetryCount: 4}, false, ""},
		{mobycontainer.RestartPolicy{Name: "always"}, true, "can't create 'AutoRemove' container with restart policy"},
		{mobycontainer.RestartPolicy{Name: "always", MaximumRetryCount: 1}, false, "maximum retry count can only be used with 'on-failure'"},
		{mobycontainer.RestartPolicy{Name: "on-failure", MaximumRetryCount: -1}, false, "cannot be negative"},
		{mobycontainer.RestartPolicy{Name: "sometimes"}, false, "unknown policy 'sometimes'"},
	} {
		err := checkRestartPolicy(tc.p, tc.autoRemove)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v (autoRemove %v): %v; want %q", tc.p, tc.autoRemove, err, tc.err)
		}
	}
}

// waitState polls c until cond holds (10 s at most).
func waitState(t *testing.T, c *Container, what string, cond func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := c.Snapshot().State
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRestartPolicies over fake VMs: on-failure:2 restarts twice and
// stays down; a stop ends an always container for good, also while it
// waits out its backoff; a new engine brings back always containers and
// unless-stopped ones nobody stopped, and not the others.
func TestRestartPolicies(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	policy := func(name mobycontainer.RestartPolicyMode, n int) func(*Spec) {
		return func(s *Spec) {
			s.HostConfig.RestartPolicy = mobycontainer.RestartPolicy{Name: name, MaximumRetryCount: n}
		}
	}

	t.Run("on-failure", func(t *testing.T) {
		before := l.vms.launched()
		c := l.add(t, "flaky", []string{"exit", "3"}, policy(mobycontainer.RestartPolicyOnFailure, 2))
		if err := l.m.Start(ctx, c.ID()); err != nil {
			t.Fatal(err)
		}
		st := waitState(t, c, "two restarts", func(s State) bool { return s.RestartCount == 2 && s.Status == mobycontainer.StateExited })
		time.Sleep(500 * time.Millisecond) // a third would start by now (backoff 400 ms)
		if n := l.vms.launched() - before; n != 3 || st.ExitCode != 3 || c.Snapshot().State.Status != mobycontainer.StateExited {
			t.Fatalf("%d runs, state %+v; want 3 runs and exited (3)", n, c.Snapshot().State)
		}
		if got := strings.Join(l.actions(c), ","); got != "start,die,start,die,start,die" {
			t.Fatalf("events %s", got)
		}
	})

	t.Run("always stopped", func(t *testing.T) {
		c := l.add(t, "svc", []string{"sleep"}, policy(mobycontainer.RestartPolicyAlways, 0))
		if err := l.m.Start(ctx, c.ID()); err != nil {
			t.Fatal(err)
		}
		before := l.vms.launched()
		if err := l.m.Stop(ctx, c.ID(), "", time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if st := c.Snapshot().State; st.Status != mobycontainer.StateExited || !st.ManuallyStopped || l.vms.launched() != before {
			t.Fatalf("after stop: %+v, %d launches since; want exited for good", st, l.vms.launched()-before)
		}
	})

	t.Run("stop during backoff", func(t *testing.T) {
		c := l.add(t, "looper", []string{"exit", "0"}, policy(mobycontainer.RestartPolicyAlways, 0))
		if err := l.m.Start(ctx, c.ID()); err != nil {
			t.Fatal(err)
		}
		// The backoff doubles: by the fourth restart it waits 800 ms.
		// Wait for that wait (a restart armed, none starting: the status
		// says restarting during a restart's start too).
		waitState(t, c, "a restart pending after 3 restarts", func(s State) bool {
			c.mu.Lock()
			pending := c.pendingRestart != nil && c.busy == ""
			c.mu.Unlock()
			return s.RestartCount >= 3 && s.Status == mobycontainer.StateRestarting && pending
		})
		before := l.vms.launched()
		if err := l.m.Stop(ctx, c.ID(), "", time.Second); err != nil {
			t.Fatalf("stop while restarting: %v", err)
		}
		time.Sleep(time.Second)
		if st := c.Snapshot().State; st.Status != mobycontainer.StateExited || l.vms.launched() != before {
			t.Fatalf("after stop during backoff: %+v, %d launches since", st, l.vms.launched()-before)
		}
	})

	t.Run("engine start", func(t *testing.T) {
		always := l.add(t, "always", []string{"sleep"}, policy(mobycontainer.RestartPolicyAlways, 0))
		unless := l.add(t, "unless", []string{"sleep"}, policy(mobycontainer.RestartPolicyUnlessStopped, 0))
		stopped := l.add(t, "unless-stopped-by-user", []string{"sleep"}, policy(mobycontainer.RestartPolicyUnlessStopped, 0))
		never := l.add(t, "never", []string{"sleep"}, nil)
		created := l.add(t, "created", []string{"sleep"}, policy(mobycontainer.RestartPolicyAlways, 0))
		for _, c := range []*Container{always, unless, stopped, never} {
			if err := l.m.Start(ctx, c.ID()); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.m.Stop(ctx, stopped.ID(), "", time.Second); err != nil {
			t.Fatal(err)
		}
		// The engine dies: its VMs with it; a new manager opens the home.
		l.m.Close()
		for _, c := range []*Container{always, unless, never} {
			c.mu.Lock()
			r := c.run
			c.mu.Unlock()
			r.vm.(*fakeVM).stop(errors.New("engine killed"))
			l.waitExit(t, c)
		}
		m2, err := NewManager(ctx, Config{Dir: l.m.dir, VMs: l.vms, Events: l.bus,
			Log: l.m.log, Limits: HostLimits{CPUs: 8, MemoryBytes: 8 << 30}})
		if err != nil {
			t.Fatal(err)
		}
		m2.timeouts = l.m.timeouts
		defer m2.Close()
		m2.StartRestartable(ctx)
		for _, c := range []*Container{always, unless} {
			c2, _ := m2.Get(c.ID())
			waitState(t, c2, c.spec.Name+" running again", func(s State) bool { return s.Status == mobycontainer.StateRunning })
		}
		time.Sleep(300 * time.Millisecond)
		for _, c := range []*Container{stopped, never, created} {
			c2, _ := m2.Get(c.ID())
			if st := c2.Snapshot().State.Status; st == mobycontainer.StateRunning {
				t.Errorf("%s came back with the engine", c.spec.Name)
			}
		}
		for _, c := range []*Container{always, unless} {
			if err := m2.Kill(ctx, c.ID(), "SIGKILL"); err != nil {
				t.Fatal(err)
			}
			c2, _ := m2.Get(c.ID())
			waitState(t, c2, "killed", func(s State) bool { return s.Status == mobycontainer.StateExited })
		}
	})
}

// A pending policy restart: a user's start replaces it (and counts
// anew), kill cancels it, rm without force refuses, rm -f cancels it and
// removes the container.
func TestRestartPendingRemoveAndStart(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	always := func(s *Spec) {
		s.HostConfig.RestartPolicy = mobycontainer.RestartPolicy{Name: mobycontainer.RestartPolicyAlways}
	}
	c := l.add(t, "looper", []string{"exit", "0"}, always)
	if err := l.m.Start(ctx, c.ID()); err != nil {
		t.Fatal(err)
	}
	waitPending := func() {
		t.Helper()
		waitState(t, c, "a pending restart", func(s State) bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return s.RestartCount >= 3 && c.pendingRestart != nil
		})
	}
	waitPending()
	// A user's start starts it at once and counts anew.
	if err := l.m.Start(ctx, c.ID()); err != nil {
		t.Fatalf("start during backoff: %v", err)
	}
	if n := c.Snapshot().State.RestartCount; n != 0 {
		t.Fatalf("RestartCount %d after a user's start; want 0", n)
	}
	waitPending()
	// kill cancels it.
	if err := l.m.Kill(ctx, c.ID(), "SIGKILL"); err != nil {
		t.Fatalf("kill during backoff: %v", err)
	}
	if st := c.Snapshot().State; st.Status != mobycontainer.StateExited || !st.ManuallyStopped {
		t.Fatalf("after kill during backoff: %+v", st)
	}
	if err := l.m.Start(ctx, c.ID()); err != nil {
		t.Fatal(err)
	}
	waitPending()
	if err := l.m.Remove(ctx, c.ID(), false); !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "container is restarting") {
		t.Fatalf("rm of a restarting container: %v", err)
	}
	if err := l.m.Remove(ctx, c.ID(), true); err != nil {
		t.Fatalf("rm -f: %v", err)
	}
	before := l.vms.launched()
	time.Sleep(time.Second)
	if _, err := l.m.Get(c.ID()); !errors.Is(err, errdefs.ErrNotFound) || l.vms.launched() != before {
		t.Fatalf("after rm -f: %v, %d launches since", err, l.vms.launched()-before)
	}
	// docker cp needs the container running.
	d := l.add(t, "idle", []string{"sleep"}, nil)
	if _, err := l.m.StatPath(ctx, d.ID(), "/"); !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "start it first") {
		t.Fatalf("cp from a created container: %v", err)
	}
}

// TestCloseWaitsForPolicyStart: Close cancels a policy restart whose VM
// is booting and returns only once that start has ended and recorded its
// outcome; nothing starts after it.
func TestCloseWaitsForPolicyStart(t *testing.T) {
	l := newLifecycle(t)
	ctx := context.Background()
	c := l.add(t, "looper", []string{"exit", "0"}, func(s *Spec) {
		s.HostConfig.RestartPolicy = mobycontainer.RestartPolicy{Name: mobycontainer.RestartPolicyAlways}
	})
	if err := l.m.Start(ctx, c.ID()); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "a pending restart", func(State) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.pendingRestart != nil
	})
	// The next restart boots a VM whose agent never answers: it hangs
	// until its context ends.
	l.vms.mu.Lock()
	l.vms.boot = bootSilent
	l.vms.mu.Unlock()
	before := l.vms.launched()
	waitState(t, c, "the restart booting", func(State) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.busy == "starting"
	})
	l.m.Close()
	c.mu.Lock()
	busy, st := c.busy, c.state
	c.mu.Unlock()
	if busy != "" || st.Starting || st.Status == mobycontainer.StateRunning {
		t.Fatalf("after Close: busy %q, state %+v; want the cancelled start recorded", busy, st)
	}
	launched := l.vms.launched()
	time.Sleep(500 * time.Millisecond)
	if n := l.vms.launched(); n != launched || launched < before {
		t.Fatalf("launches: %d before the silent boot, %d at Close, %d after it", before, launched, n)
	}
}
