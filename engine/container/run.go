package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobyevents "github.com/moby/moby/api/types/events"
)

// mainProcess is the guest's ID of a container's main process.
const mainProcess = "main"

// Timeouts of a run.
const (
	// bootTimeout bounds VM start to a ready agent (TCG is slow).
	bootTimeout = 60 * time.Second
	// powerOffTimeout is how long the guest gets to power off cleanly
	// after its main process exited, before the VM is killed.
	powerOffTimeout = 10 * time.Second
)

// running is a container's VM while it is up.
type running struct {
	vm     VM
	agent  *agent.Client
	stdio  *agent.Attached
	tty    bool
	killed bool // the engine killed the process (stop/kill)
}

// ErrNotModified says the container already was in the asked state
// (Docker answers 304 for start of a running and stop of a stopped one).
var ErrNotModified = errors.New("container already in that state")

// Start boots the container's VM and starts its main process:
//   - launches the micro-VM with the container's rootfs clone;
//   - dials the agent (guestinit) and waits for it to answer;
//   - configures the guest's network, hostname, DNS and hosts;
//   - creates the main process (user, env, workdir, tty) with its stdio
//     wired to the container's log and attached clients;
//   - starts it, and watches it until it exits, then powers the VM off.
//
// A command missing in the image fails the start with exit code 127, as
// with Docker; a VM that fails to boot fails it with the console's tail.
func (m *Manager) Start(ctx context.Context, ref string) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	switch {
	case c.run != nil:
		c.mu.Unlock()
		return ErrNotModified
	case c.busy != "":
		busy := c.busy
		c.mu.Unlock()
		return errdefs.Conflict(fmt.Errorf("container %s is %s", c.spec.ID[:12], busy))
	}
	c.busy = "starting"
	spec := c.spec
	c.exited = make(chan struct{})
	c.mu.Unlock()

	err = m.start(ctx, c, spec)
	c.mu.Lock()
	c.busy = ""
	if err != nil {
		c.state.Status = mobycontainer.StateExited
		c.state.Error = err.Error()
		if c.state.ExitCode == 0 {
			c.state.ExitCode = 128
		}
		c.state.FinishedAt = time.Now().UTC()
		_ = c.saveStateLocked()
		close(c.exited)
		autoRemove := spec.HostConfig.AutoRemove
		c.mu.Unlock()
		c.out.finish()
		m.publish(c, mobyevents.ActionDie, map[string]string{"exitCode": fmt.Sprint(c.state.ExitCode)})
		if autoRemove {
			_ = m.removeStopped(c)
		}
		return fmt.Errorf("start container %s: %w", spec.ID[:12], err)
	}
	c.mu.Unlock()
	return nil
}

func (m *Manager) start(ctx context.Context, c *Container, spec Spec) (err error) {
	if m.vms == nil {
		return errdefs.Unavailable(errors.New("this engine has no VM backend configured"))
	}
	t0 := time.Now()
	tl := &BootTimeline{}
	log, err := openLogFile(filepath.Join(c.dir, "container.log"), 0)
	if err != nil {
		return err
	}
	c.out.setLog(log)
	hc := spec.HostConfig
	cpus := DefaultCPUs
	if hc.NanoCPUs > 0 {
		cpus = int((hc.NanoCPUs + 1e9 - 1) / 1e9)
	}
	mem := uint64(DefaultMemory)
	if hc.Memory > 0 {
		mem = uint64(hc.Memory)
	}
	bootCtx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	vm, err := m.vms.Launch(bootCtx, LaunchRequest{
		ID: spec.ID, Dir: c.dir, Rootfs: filepath.Join(c.dir, "rootfs.ext4"),
		ConsoleLog: filepath.Join(c.dir, "console.log"), CPUs: cpus, MemoryBytes: mem,
	})
	if err != nil {
		return fmt.Errorf("boot VM: %w", err)
	}
	tl.VMStarted = time.Since(t0)
	tl.Backend = vm.Backend()
	fail := func(err error) error {
		_ = vm.Kill()
		<-vm.Done()
		return err
	}
	ac, err := dialAgent(bootCtx, vm)
	if err != nil {
		return fail(fmt.Errorf("VM did not come up: %w\nconsole:\n%s", err, vm.ConsoleTail(20)))
	}
	tl.AgentReady = time.Since(t0)
	_ = ac.SetTime(bootCtx, time.Now())
	net := networkRequest(vm.Network())
	net.Hostname = spec.Config.Hostname
	for _, d := range hc.DNS {
		net.DnsServers = append(net.DnsServers, d.String())
	}
	if len(hc.DNSSearch) > 0 {
		net.DnsSearch = hc.DNSSearch
	}
	if len(hc.DNSOptions) > 0 {
		net.DnsOptions = hc.DNSOptions
	}
	for _, h := range hc.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if ok {
			net.Hosts = append(net.Hosts, &agentpb.HostEntry{Ip: ip, Names: []string{name}})
		}
	}
	if err := ac.ConfigureNetwork(bootCtx, net); err != nil {
		ac.Close()
		return fail(fmt.Errorf("configure network: %w", err))
	}
	if hc.ReadonlyRootfs {
		// The disk stays writable for the guest (resolv.conf, hosts and
		// hostname are written above); the container's root is not.
		if err := ac.Mount(bootCtx, &agentpb.MountRequest{Source: "rootfs", Target: "/", Options: []string{"remount", "bind", "ro"}}); err != nil {
			ac.Close()
			return fail(fmt.Errorf("make the root filesystem read-only: %w", err))
		}
	}
	var ip string
	if info, err := ac.Info(bootCtx); err == nil {
		if len(info.Addresses) > 0 {
			ip, _, _ = strings.Cut(info.Addresses[0], "/")
		}
		if b := info.Boot; b != nil {
			tl.GuestInitStart = time.Duration(b.InitStartNs)
			tl.GuestModulesLoaded = time.Duration(b.ModulesLoadedNs)
			tl.GuestRootfsMounted = time.Duration(b.RootfsMountedNs)
			tl.GuestAgentServing = time.Duration(b.AgentServingNs)
		}
	}

	cfg := spec.Config
	req := &agentpb.CreateProcessRequest{
		Id:       mainProcess,
		Args:     append([]string{spec.Path}, spec.Args...),
		Env:      withDefaultEnv(cfg.Env, cfg.Hostname, cfg.Tty),
		Cwd:      cfg.WorkingDir,
		User:     cfg.User,
		Tty:      cfg.Tty,
		Hostname: cfg.Hostname,
		Init:     hc.Init != nil && *hc.Init,
	}
	if hc.ConsoleSize[0] > 0 && hc.ConsoleSize[1] > 0 {
		req.Rows, req.Cols = uint32(hc.ConsoleSize[0]), uint32(hc.ConsoleSize[1])
	}
	for _, u := range hc.Ulimits {
		req.Rlimits = append(req.Rlimits, &agentpb.Rlimit{Type: u.Name, Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
	}
	stdio := agent.Stdio{Stdout: streamWriter{c.out, "stdout"}, Stderr: streamWriter{c.out, "stderr"}}
	c.mu.Lock()
	stdinR := c.stdinR
	c.mu.Unlock()
	if cfg.OpenStdin {
		stdio.Stdin = stdinR
	}
	ac.AssignPorts(req, stdio)
	if err := ac.CreateProcess(bootCtx, req); err != nil {
		ac.Close()
		return fail(processError(c, err))
	}
	attached, err := ac.Attach(bootCtx, req, stdio)
	if err != nil {
		ac.Close()
		return fail(err)
	}
	_, err = ac.StartProcess(bootCtx, mainProcess)
	if err != nil {
		attached.Close()
		ac.Close()
		return fail(processError(c, err))
	}
	tl.ProcessUp = time.Since(t0)

	r := &running{vm: vm, agent: ac, stdio: attached, tty: cfg.Tty}
	c.mu.Lock()
	c.run = r
	c.state = State{
		Status:    mobycontainer.StateRunning,
		Pid:       vm.Pid(),
		StartedAt: time.Now().UTC(),
		IPAddress: ip,
		Boot:      tl,
	}
	_ = c.saveStateLocked()
	c.mu.Unlock()
	m.publish(c, mobyevents.ActionStart, nil)
	go m.watch(c, r)
	return nil
}

// dialAgent connects to the guest's agent, giving up early when the VM
// dies while booting.
func dialAgent(ctx context.Context, vm VM) (*agent.Client, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-vm.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	ac, err := agent.Dial(ctx, vm.Dialer())
	if err != nil {
		select {
		case <-vm.Done():
			return nil, fmt.Errorf("VM stopped while booting: %v", vm.Err())
		default:
		}
		return nil, err
	}
	return ac, nil
}

// processError turns a failure to create or start the main process into
// Docker's: a missing command is exit code 127 with "executable file not
// found in $PATH", one that cannot run is 126.
func processError(c *Container, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		c.state.ExitCode = 127
		return errdefs.InvalidArgument(fmt.Errorf("exec: %q: executable file not found in $PATH: %w", c.spec.Path, err))
	case errors.Is(err, errdefs.ErrPermissionDenied):
		c.state.ExitCode = 126
		return errdefs.InvalidArgument(fmt.Errorf("exec: %q: permission denied: %w", c.spec.Path, err))
	}
	return err
}

// withDefaultEnv adds PATH, HOSTNAME, HOME and TERM when the config lacks
// them, as Docker does.
func withDefaultEnv(env []string, hostname string, tty bool) []string {
	have := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		have[k] = true
	}
	out := append([]string{}, env...)
	if !have["PATH"] {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if !have["HOSTNAME"] && hostname != "" {
		out = append(out, "HOSTNAME="+hostname)
	}
	if !have["TERM"] && tty {
		out = append(out, "TERM=xterm")
	}
	return out
}

// watch waits for the main process (or the VM) to end, records the exit,
// powers the VM off and removes an --rm container.
func (m *Manager) watch(c *Container, r *running) {
	ctx := context.Background()
	type result struct {
		st  agent.ExitStatus
		err error
	}
	waited := make(chan result, 1)
	go func() {
		st, err := r.agent.WaitProcess(ctx, mainProcess)
		waited <- result{st, err}
	}()
	var exitCode int
	var oom bool
	var reason string
	vmDied := func() string {
		reason := "the VM powered off"
		if err := r.vm.Err(); err != nil {
			reason = fmt.Sprintf("the VM stopped: %v", err)
		}
		if !r.killed {
			reason += "\nconsole:\n" + r.vm.ConsoleTail(20)
		}
		return reason
	}
	select {
	case res := <-waited:
		if res.err != nil {
			exitCode, reason = 137, fmt.Sprintf("lost the agent: %v", res.err)
			// The usual cause: the VM itself is gone.
			select {
			case <-r.vm.Done():
				reason = vmDied()
			case <-time.After(2 * time.Second):
			}
		} else {
			exitCode, oom = res.st.Code, res.st.OOMKilled
		}
		// All output is in once the guest closes the streams.
		outDone := make(chan struct{})
		go func() { r.stdio.Wait(); close(outDone) }()
		select {
		case <-outDone:
		case <-r.vm.Done():
		case <-time.After(5 * time.Second):
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = r.agent.Shutdown(sctx, false)
		cancel()
		select {
		case <-r.vm.Done():
		case <-time.After(powerOffTimeout):
			m.log.Warn("VM did not power off; killing it", "container", c.spec.ID[:12])
			_ = r.vm.Kill()
			<-r.vm.Done()
		}
	case <-r.vm.Done():
		exitCode, reason = 137, vmDied()
	}
	r.stdio.Close()
	r.agent.Close()

	c.mu.Lock()
	c.run = nil
	c.state.Status = mobycontainer.StateExited
	c.state.ExitCode = exitCode
	c.state.OOMKilled = oom
	if !r.killed {
		c.state.Error = reason
	}
	c.state.FinishedAt = time.Now().UTC()
	c.state.Pid = 0
	_ = c.saveStateLocked()
	for id, e := range c.execs {
		e.containerStopped()
		delete(c.execs, id)
	}
	// A fresh stdin for the next run; clients still writing get EOF.
	c.stdinW.CloseWithError(io.EOF)
	c.stdinR, c.stdinW = io.Pipe()
	autoRemove := c.spec.HostConfig.AutoRemove
	exited := c.exited
	c.mu.Unlock()
	c.out.finish()
	m.publish(c, mobyevents.ActionDie, map[string]string{"exitCode": fmt.Sprint(exitCode)})
	close(exited)
	if autoRemove {
		if err := m.removeStopped(c); err != nil {
			m.log.Error("auto-remove", "container", c.spec.ID[:12], "err", err)
		}
	}
}

// Stop sends the stop signal (the container's StopSignal, else SIGTERM,
// or sig when given), waits up to timeout for the process to exit, then
// kills it and, failing that, the VM. A container that is not running is
// ErrNotModified.
func (m *Manager) Stop(ctx context.Context, ref string, sig string, timeout time.Duration) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	r := c.run
	if sig == "" {
		sig = c.spec.Config.StopSignal
	}
	if timeout < 0 && c.spec.Config.StopTimeout != nil {
		timeout = time.Duration(*c.spec.Config.StopTimeout) * time.Second
	}
	exited := c.exited
	c.mu.Unlock()
	if r == nil {
		return ErrNotModified
	}
	if sig == "" {
		sig = "SIGTERM"
	}
	if timeout < 0 {
		timeout = 10 * time.Second
	}
	n, err := agent.SignalNumber(sig)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("stop container %s: %w", c.spec.ID[:12], err))
	}
	c.mu.Lock()
	r.killed = true
	c.mu.Unlock()
	if err := r.agent.SignalProcess(ctx, mainProcess, n); err == nil {
		select {
		case <-exited:
			m.publish(c, mobyevents.ActionStop, nil)
			return nil
		case <-time.After(timeout):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_ = r.agent.SignalProcess(ctx, mainProcess, 9)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = r.vm.Kill()
		select {
		case <-exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	m.publish(c, mobyevents.ActionStop, nil)
	return nil
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

// AttachOptions says which streams an attached client takes.
type AttachOptions struct {
	// Stdin is copied into the process's input (when the container was
	// created with OpenStdin).
	Stdin io.Reader
	// Stdout and Stderr receive the output; with a tty, Stdout gets the
	// terminal's.
	Stdout, Stderr io.Writer
}

// Attach connects a client to the container's main process until the
// current (or, for a created container, the next) run ends, or ctx is
// done. With StdinOnce, the client's EOF closes the process's input.
func (m *Manager) Attach(ctx context.Context, ref string, opts AttachOptions) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	sub := c.out.subscribe(opts.Stdout, opts.Stderr)
	defer c.out.unsubscribe(sub)
	c.mu.Lock()
	stdinW := c.stdinW
	openStdin, once := c.spec.Config.OpenStdin, c.spec.Config.StdinOnce
	c.mu.Unlock()
	if opts.Stdin != nil && openStdin {
		go func() {
			_, err := io.Copy(stdinW, opts.Stdin)
			if err == nil && once {
				stdinW.Close()
			}
		}()
	}
	select {
	case <-sub.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Logs sends the container's log entries that opts select to emit; with
// Follow it keeps sending until the container stops or ctx is done.
func (m *Manager) Logs(ctx context.Context, ref string, opts LogOptions, emit func(LogEntry) error) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	running := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.run != nil || c.busy == "starting"
	}
	return readLogs(ctx, filepath.Join(c.dir, "container.log"), opts, running, c.out.changed, emit)
}
