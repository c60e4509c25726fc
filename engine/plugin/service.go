//go:build unix

package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/berthvm/berth/engine/events"
	mobyevents "github.com/moby/moby/api/types/events"
)

// Defaults of SupervisorConfig.
const (
	DefaultGrace      = 5 * time.Second
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
)

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	// HomeDir and Socket are the Berth home and API socket plugins are
	// told about.
	HomeDir, Socket string
	// LogDir receives <name>.log for each service plugin.
	LogDir string
	// Log is the engine's log; nil discards.
	Log *slog.Logger
	// Grace is how long a plugin has after SIGTERM before SIGKILL.
	Grace time.Duration
	// MinBackoff and MaxBackoff bound the wait before restarting a
	// crashed plugin: it doubles after each crash, and a run longer than
	// MaxBackoff resets it.
	MinBackoff, MaxBackoff time.Duration
}

// Supervisor runs service plugins: those of lifecycle engine for as long
// as it runs, those of lifecycle container beside each running container.
// It restarts crashed ones with exponential backoff and stops them all at
// Shutdown, SIGTERM then SIGKILL after the grace period.
type Supervisor struct {
	cfg    SupervisorConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	perCtr    []Plugin
	instances map[string]*instance // by name, or name/containerID
}

// instance is one supervised process.
type instance struct {
	stop chan struct{}
	done chan struct{}
}

// NewSupervisor returns a Supervisor that runs nothing yet.
func NewSupervisor(cfg SupervisorConfig) *Supervisor {
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{cfg: cfg, ctx: ctx, cancel: cancel, instances: map[string]*instance{}}
}

// Run discovers plugins with discovery and, in the background (never
// blocking the caller), starts the service plugins: engine ones now,
// container ones for each container running lists and for each one
// bus reports started afterwards, stopping each when its container
// dies.
func (s *Supervisor) Run(discovery Config, bus *events.Bus, running func() []string) {
	// Subscribe before listing, so no container start falls in between.
	_, evs := bus.Subscribe(s.ctx, time.Time{}, func(m events.Message) bool {
		return m.Type == mobyevents.ContainerEventType &&
			(m.Action == mobyevents.ActionStart || m.Action == mobyevents.ActionDie || m.Action == mobyevents.ActionDestroy)
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		r := Discover(s.ctx, discovery)
		for _, sk := range r.Skipped {
			s.cfg.Log.Warn("plugin skipped", "plugin", sk.Name, "path", sk.Path, "reason", sk.Reason)
		}
		s.Start(r.Plugins)
		for _, id := range running() {
			s.ContainerStarted(id)
		}
		for m := range evs {
			if m.Action == mobyevents.ActionStart {
				s.ContainerStarted(m.Actor.ID)
			} else {
				s.ContainerStopped(m.Actor.ID)
			}
		}
	}()
}

// Start starts the engine-lifecycle service plugins among plugins and
// remembers the container-lifecycle ones for ContainerStarted.
func (s *Supervisor) Start(plugins []Plugin) {
	for _, p := range plugins {
		if p.Kind != KindService {
			continue
		}
		if p.Lifecycle == LifecycleContainer {
			s.mu.Lock()
			s.perCtr = append(s.perCtr, p)
			s.mu.Unlock()
			continue
		}
		s.launch(p.Name, p, "")
	}
}

// ContainerStarted starts each container-lifecycle plugin for container
// id (once: a second call is a no-op).
func (s *Supervisor) ContainerStarted(id string) {
	s.mu.Lock()
	ps := append([]Plugin(nil), s.perCtr...)
	s.mu.Unlock()
	for _, p := range ps {
		s.launch(p.Name+"/"+id, p, id)
	}
}

// ContainerStopped stops the plugins running for container id, without
// waiting for them to exit.
func (s *Supervisor) ContainerStopped(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.perCtr {
		key := p.Name + "/" + id
		if inst, ok := s.instances[key]; ok {
			close(inst.stop)
			delete(s.instances, key)
		}
	}
}

// Running lists the keys of the supervised instances: a plugin's name,
// or name/containerID.
func (s *Supervisor) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.instances {
		out = append(out, k)
	}
	return out
}

// Shutdown stops every plugin (SIGTERM, then SIGKILL after the grace)
// and waits for them and the supervisor's goroutines, or for ctx.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for k, inst := range s.instances {
		close(inst.stop)
		delete(s.instances, k)
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop service plugins: %w", ctx.Err())
	}
}

// launch supervises p under key unless it already runs or the
// supervisor is shut down.
func (s *Supervisor) launch(key string, p Plugin, containerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.instances[key] != nil {
		return
	}
	inst := &instance{stop: make(chan struct{}), done: make(chan struct{})}
	s.instances[key] = inst
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(inst.done)
		s.supervise(inst, p, containerID)
	}()
}

// supervise runs p until told to stop, restarting it with backoff.
func (s *Supervisor) supervise(inst *instance, p Plugin, containerID string) {
	log := s.cfg.Log.With("plugin", p.Name)
	if containerID != "" {
		log = log.With("container", containerID)
	}
	backoff := s.cfg.MinBackoff
	for {
		started := time.Now()
		stopped, err := s.runOnce(inst.stop, p, containerID, log)
		if stopped {
			return
		}
		if time.Since(started) > s.cfg.MaxBackoff {
			backoff = s.cfg.MinBackoff
		}
		log.Warn("service plugin exited; restarting", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-inst.stop:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// runOnce runs p once with its log as output. stopped says it ended
// because stop was closed.
func (s *Supervisor) runOnce(stop <-chan struct{}, p Plugin, containerID string, log *slog.Logger) (stopped bool, err error) {
	if err := os.MkdirAll(s.cfg.LogDir, 0o700); err != nil {
		return false, fmt.Errorf("create plugin log directory %s: %w", s.cfg.LogDir, err)
	}
	logPath := filepath.Join(s.cfg.LogDir, p.Name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return false, fmt.Errorf("open plugin log %s: %w", logPath, err)
	}
	defer lf.Close()
	cmd := exec.Command(p.Path)
	cmd.Env = Env(os.Environ(), p.Name, s.cfg.HomeDir, s.cfg.Socket)
	if containerID != "" {
		cmd.Env = append(cmd.Env, EnvContainerID+"="+containerID)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group, so that stopping it reaches its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("start service plugin %s (%s): %w", p.Name, p.Path, err)
	}
	log.Info("service plugin started", "pid", cmd.Process.Pid, "log", logPath)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			err = errors.New("exited with status 0")
		}
		return false, err
	case <-stop:
	}
	pgid := -cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	t := time.NewTimer(s.cfg.Grace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		log.Warn("service plugin did not stop on SIGTERM; killing it", "grace", s.cfg.Grace)
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-exited
	}
	// Children that outlived the leader go too.
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	log.Info("service plugin stopped")
	return true, nil
}
