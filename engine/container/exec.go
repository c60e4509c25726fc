package container

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
	mobyevents "github.com/moby/moby/api/types/events"
)

// ExecConfig is an extra process to run in a running container.
type ExecConfig struct {
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	Tty        bool
	// AttachStdin gives the process the client's input; without it the
	// process reads EOF.
	AttachStdin bool
	// AttachStdout and AttachStderr send the process's output to the
	// client; without them it is discarded. With a tty, the terminal's
	// output is stdout.
	AttachStdout, AttachStderr bool
	// ConsoleSize is the initial terminal size (rows, cols).
	ConsoleSize [2]uint
}

// Exec is one exec session: created, then started once.
//
// ID, Container and Config are fixed at create (read them without a
// lock); mu guards the rest, and the console size that SetConsoleSize
// changes before the start.
type Exec struct {
	ID        string
	Container *Container
	Config    ExecConfig
	agent     *agent.Client

	mu          sync.Mutex
	consoleSize [2]uint
	running     bool
	started     bool
	exitCode    *int
}

// ExecState is what InspectExec reports.
type ExecState struct {
	ID          string
	ContainerID string
	Config      ExecConfig
	Running     bool
	ExitCode    *int
	// Pid is the exec's pid in the container; 0 while the guest does not
	// report it.
	Pid int
}

// CreateExec prepares cfg to run in the running container ref and returns
// the exec's ID.
func (m *Manager) CreateExec(ctx context.Context, ref string, cfg ExecConfig) (string, error) {
	c, err := m.Get(ref)
	if err != nil {
		return "", err
	}
	if len(cfg.Cmd) == 0 {
		return "", errdefs.InvalidArgument(errors.New("exec: no command given"))
	}
	c.mu.Lock()
	if c.run == nil {
		c.mu.Unlock()
		return "", errdefs.Conflict(fmt.Errorf("container %s is not running", c.spec.ID))
	}
	e := &Exec{ID: NewID(), Container: c, Config: cfg, agent: c.run.agent, consoleSize: cfg.ConsoleSize}
	c.execs[e.ID] = e
	c.mu.Unlock()
	// The manager's lock is never taken under a container's.
	m.mu.Lock()
	m.execs[e.ID] = e
	m.mu.Unlock()
	return e.ID, nil
}

// forgetExecs drops the execs of a run that ended, marking those still
// running as killed (137).
func (m *Manager) forgetExecs(execs map[string]*Exec) {
	for _, e := range execs {
		e.mu.Lock()
		if e.running {
			e.running = false
			code := 137
			e.exitCode = &code
		}
		e.mu.Unlock()
	}
	m.mu.Lock()
	for id := range execs {
		delete(m.execs, id)
	}
	m.mu.Unlock()
}

// SetConsoleSize sets the terminal size (rows, cols) the exec starts
// with, replacing the one it was created with.
func (e *Exec) SetConsoleSize(size [2]uint) {
	e.mu.Lock()
	e.consoleSize = size
	e.mu.Unlock()
}

// GetExec finds an exec session by ID.
func (m *Manager) GetExec(id string) (*Exec, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.execs[id]; ok {
		return e, nil
	}
	return nil, errdefs.NotFound(fmt.Errorf("No such exec instance: %s", id))
}

// State returns the exec's state.
func (e *Exec) State() ExecState {
	e.mu.Lock()
	defer e.mu.Unlock()
	cfg := e.Config
	cfg.ConsoleSize = e.consoleSize
	return ExecState{ID: e.ID, ContainerID: e.Container.spec.ID, Config: cfg, Running: e.running, ExitCode: e.exitCode}
}

// StartExec runs the exec until it exits and its output is drained, and
// returns its exit code. Only the streams the exec was created to attach
// (AttachStdin, AttachStdout, AttachStderr) are connected to stdio; the
// others are /dev/null in the guest. ctx bounds the exec's stdio and the
// wait for it: a detached exec (docker exec -d) is given a context that
// outlives its request, and ends when its process or container does. The exit code is recorded before
// StartExec returns, so a client that inspects after its stream closed
// sees it. A missing command is exit code 127 and an error.
func (m *Manager) StartExec(ctx context.Context, id string, stdio agent.Stdio) (int, error) {
	e, err := m.GetExec(id)
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return 0, errdefs.Conflict(fmt.Errorf("exec %s has already been started", id))
	}
	e.started = true
	e.running = true
	size := e.consoleSize
	e.mu.Unlock()
	c := e.Container
	m.publish(c, mobyevents.Action("exec_start: "+e.Config.Cmd[0]), map[string]string{"execID": e.ID})

	req := &agentpb.CreateProcessRequest{
		Id:          e.ID,
		ContainerId: mainProcess,
		Args:        e.Config.Cmd,
		Env:         withDefaultEnv(mergeEnv(c.spec.Config.Env, e.Config.Env), c.spec.Config.Hostname, e.Config.Tty),
		Cwd:         e.Config.WorkingDir,
		User:        e.Config.User,
		Tty:         e.Config.Tty,
		Rows:        uint32(size[0]),
		Cols:        uint32(size[1]),
	}
	if req.Cwd == "" {
		req.Cwd = c.spec.Config.WorkingDir
	}
	if req.User == "" {
		req.User = c.spec.Config.User
	}
	if !e.Config.AttachStdin {
		stdio.Stdin = nil
	}
	if !e.Config.AttachStdout {
		stdio.Stdout = nil
	}
	if !e.Config.AttachStderr {
		stdio.Stderr = nil
	}
	st, err := e.agent.Run(ctx, req, stdio)
	code := st.Code
	if err != nil && code == 0 {
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			code = 127
			err = errdefs.InvalidArgument(fmt.Errorf("exec: %q: executable file not found in $PATH: %w", e.Config.Cmd[0], err))
		default:
			code = 126
		}
	}
	e.mu.Lock()
	e.running = false
	e.exitCode = &code
	e.mu.Unlock()
	m.publish(c, mobyevents.Action("exec_die"), map[string]string{"execID": e.ID, "exitCode": fmt.Sprint(code)})
	return code, err
}

// ResizeExec sets the terminal size of a tty exec.
func (m *Manager) ResizeExec(ctx context.Context, id string, rows, cols uint32) error {
	e, err := m.GetExec(id)
	if err != nil {
		return err
	}
	if !e.Config.Tty {
		return nil
	}
	return e.agent.ResizePty(ctx, e.ID, rows, cols)
}

// SignalExec delivers sig ("SIGHUP", "9", …; as Kill takes it) to the
// process of a running exec. An exec that is not running is a conflict.
func (m *Manager) SignalExec(ctx context.Context, id string, sig string) error {
	e, err := m.GetExec(id)
	if err != nil {
		return err
	}
	n, err := agent.SignalNumber(sig)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("signal exec %s: %w", id, err))
	}
	e.mu.Lock()
	running := e.running
	e.mu.Unlock()
	if !running {
		return errdefs.Conflict(fmt.Errorf("signal exec %s: it is not running", id))
	}
	if err := e.agent.SignalProcess(ctx, e.ID, n); err != nil {
		return fmt.Errorf("signal exec %s: %w", id, err)
	}
	return nil
}
