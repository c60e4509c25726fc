package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/network"
	"github.com/berthvm/berth/engine/share"
	"github.com/berthvm/berth/engine/vmm"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobyevents "github.com/moby/moby/api/types/events"
)

// mainProcess is the guest's ID of a container's main process.
const mainProcess = "main"

// timeouts bounds the waits of a run. Every Manager uses defaultTimeouts;
// the package's tests shorten them.
type timeouts struct {
	// boot bounds VM start to a ready agent (TCG is slow).
	boot time.Duration
	// lostAgent is how long a run whose agent went away waits for the VM
	// to stop by itself before giving it up as lost.
	lostAgent time.Duration
	// drain is how long the output may take to arrive after the main
	// process exited.
	drain time.Duration
	// powerOff is how long the guest gets to power off cleanly after its
	// main process exited, before the VM is killed.
	powerOff time.Duration
	// kill is how long Stop waits for the process after SIGKILL before it
	// kills the VM.
	kill time.Duration
}

var defaultTimeouts = timeouts{
	boot:      60 * time.Second,
	lostAgent: 2 * time.Second,
	drain:     5 * time.Second,
	powerOff:  10 * time.Second,
	kill:      5 * time.Second,
}

// running is a container's VM while it is up. Every field but killed is
// set before the value is published in Container.run and never changes
// after; killed is guarded by the container's mu.
type running struct {
	vm    VM
	agent *agent.Client
	stdio *agent.Attached
	tty   bool
	// ip is the guest's address and boot the start's timeline, as the
	// state of this run reports them.
	ip   string
	boot *BootTimeline
	// net is the run's place on a Berth network (nil without one): its
	// published ports close when the run ends.
	net NetworkAttachment
	// guestNet is the guest's network as configured: the backend's plan,
	// or the DHCP lease it got (nil: none).
	guestNet *vmm.GuestNetwork

	// shares are the run-time shares mounted in this run; the VM has
	// sharePorts spare ports for them (VM.SharePort).
	shares     liveShares
	sharePorts int
	log        *slog.Logger

	// killed says the engine ended the process (stop, or kill with
	// SIGKILL): the exit is then not an error of the container's.
	killed bool
	// disposable says nothing of the VM outlives the run: an --rm
	// container without binds, volumes or run-time shares (nor any
	// mounted later: shares), whose root disk is removed with it. Its
	// VM is killed instead of powered off.
	disposable bool
}

// abort undoes a start that failed half-way: it closes what was opened
// and kills the VM, and returns once the VM is gone.
func (r *running) abort() {
	if r.stdio != nil {
		r.stdio.Close()
	}
	r.shares.closeAll()
	if r.agent != nil {
		r.agent.Close()
	}
	_ = r.vm.Kill()
	<-r.vm.Done()
	if r.net != nil {
		r.net.Close()
	}
}

// ErrNotModified says the container already was in the asked state
// (Docker answers 304 for start of a running and stop of a stopped one).
var ErrNotModified = errors.New("container already in that state")

// exitCodeError is a start failure with the exit code Docker reports for
// it (127: command not found, 126: command cannot run).
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// startFailedCode is the exit code of a start that failed for a reason
// other than the command (Docker's 128).
const startFailedCode = 128

// Start boots the container's VM and starts its main process:
//   - launches the micro-VM with the container's rootfs clone;
//   - dials the agent (guestinit) and waits for it to answer;
//   - configures the guest's network, hostname, DNS and hosts, and makes
//     the root read-only when asked;
//   - creates the main process (user, env, workdir, tty) with its stdio
//     wired to the container's log and attached clients;
//   - starts it, and watches it until it exits, then powers the VM off.
//
// ctx bounds the start only: the run it begins outlives it, and ends when
// the process or the VM does (or Stop or Kill end it).
//
// A command missing in the image fails the start with exit code 127, as
// with Docker; a VM that fails to boot fails it with the console's tail.
func (m *Manager) Start(ctx context.Context, ref string) error {
	c, err := m.Get(ref)
	if err != nil {
		return err
	}
	return m.startWith(ctx, c, nil)
}

// startWith is Start. policy, when set, is the token of a restart by the
// container's restart policy (engineStart for the engine's own start):
// the start goes ahead only while that restart is still pending, and
// counts it. A user's start (nil) cancels a pending policy restart and
// counts anew.
func (m *Manager) startWith(ctx context.Context, c *Container, policy *restartToken) error {
	byPolicy := policy != nil
	c.mu.Lock()
	switch {
	case policy == nil:
		c.cancelRestartLocked()
		c.restartDelay = 0 // the backoff starts over, as Docker's
	case policy == engineStart:
	case c.pendingRestart != policy:
		c.mu.Unlock()
		return nil // cancelled by a stop, kill, start or remove
	default:
		c.pendingRestart = nil
		c.state.RestartCount++
	}
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
	// On disk, so that an engine killed during the start says so when it
	// opens again (the start's outcome replaces it).
	c.state.Starting = true
	_ = c.saveStateLocked()
	spec := c.spec
	c.exited = make(chan struct{})
	close(c.nextStart)
	c.nextStart = make(chan struct{})
	c.mu.Unlock()

	r, err := m.start(ctx, c, spec)
	if err != nil {
		m.startFailed(c, err, byPolicy)
		return fmt.Errorf("start container %s: %w", spec.ID[:12], err)
	}
	c.mu.Lock()
	c.busy = ""
	c.run = r
	restarts := 0
	if byPolicy {
		restarts = c.state.RestartCount
	}
	c.state = State{
		RestartCount: restarts,
		Status:       mobycontainer.StateRunning,
		Pid:          r.vm.Pid(),
		StartedAt:    time.Now().UTC(),
		IPAddress:    r.ip,
		Boot:         r.boot,
	}
	if r.net != nil {
		c.state.Ports = r.net.Ports()
	}
	if gn := r.guestNet; gn != nil && gn.Address.IsValid() {
		c.state.IPPrefixLen, c.state.Gateway = gn.Address.Bits(), gn.Gateway
	}
	hc := healthConfig(spec.Config)
	if hc != nil {
		c.state.Health = &mobycontainer.Health{Status: mobycontainer.Starting, Log: []*mobycontainer.HealthcheckResult{}}
	}
	exited := c.exited
	_ = c.saveStateLocked()
	c.mu.Unlock()
	m.publish(c, mobyevents.ActionStart, nil)
	go m.watch(c, r)
	if hc != nil {
		go m.monitorHealth(c, r, hc, exited)
	}
	return nil
}

// startFailed records a failed start as an exit (with the command's exit
// code when the command was at fault) the way recordExit records a run's,
// and removes an --rm container.
func (m *Manager) startFailed(c *Container, err error, byPolicy bool) {
	c.out.finish() // while busy still says starting
	code := startFailedCode
	var ce *exitCodeError
	if errors.As(err, &ce) {
		code = ce.code
	}
	c.mu.Lock()
	c.busy = ""
	c.state.Starting = false
	c.state.Status = mobycontainer.StateExited
	c.state.Error = err.Error()
	c.state.ExitCode = code
	c.state.FinishedAt = time.Now().UTC()
	c.state.Pid = 0
	_ = c.saveStateLocked()
	m.events.Publish(c.eventLocked(mobyevents.ActionDie, map[string]string{"exitCode": fmt.Sprint(code)}))
	close(c.exited)
	autoRemove := c.spec.HostConfig.AutoRemove
	if byPolicy && !m.closed.Load() && c.shouldRestartLocked(code, false) {
		m.scheduleRestartLocked(c, 0)
	}
	c.mu.Unlock()
	if autoRemove {
		if err := m.removeStopped(c, true); err != nil {
			m.log.Error("auto-remove", "container", c.spec.ID[:12], "err", err)
		}
	}
}

// start does Start's steps and returns the run, its main process
// started. Whatever fails after the VM is up goes through one cleanup
// (running.abort).
func (m *Manager) start(ctx context.Context, c *Container, spec Spec) (*running, error) {
	if m.vms == nil {
		return nil, errdefs.Unavailable(errors.New("this engine has no VM backend configured"))
	}
	t0 := time.Now()
	sp := newSpans(t0)
	defer sp.log(m.log, "start: phases", "container", spec.ID[:12])
	log, err := openLogFile(filepath.Join(c.dir, "container.log"), 0)
	if err != nil {
		return nil, err
	}
	c.out.setLog(log)
	boot, err := m.vms.Prepare(ctx)
	if err != nil {
		return nil, fmt.Errorf("boot VM: %w", err)
	}
	sp.mark("prepare")
	bootCtx, cancel := context.WithTimeout(ctx, m.timeouts.boot)
	defer cancel()
	cpus, mem := vmSize(spec.HostConfig)
	att, err := m.attachNetwork(ctx, spec)
	if err != nil {
		return nil, err
	}
	req := LaunchRequest{
		ID: spec.ID, Boot: boot, Dir: c.dir, Rootfs: filepath.Join(c.dir, "rootfs.ext4"),
		ConsoleLog: filepath.Join(c.dir, "console.log"), CPUs: cpus, MemoryBytes: mem,
		Shares: share.Plan(spec.Mounts), Cold: spec.Config.Labels[ColdBootLabel] == "true",
		SharePorts: RunSharePorts,
	}
	if att != nil {
		req.Network = att.Network()
	}
	sp.mark("network")
	req.NoNetwork = spec.NetworkName() == network.None
	vm, err := m.vms.Launch(bootCtx, req)
	if err != nil {
		if att != nil {
			att.Close()
		}
		return nil, fmt.Errorf("boot VM: %w", err)
	}
	r := &running{vm: vm, net: att, tty: spec.Config.Tty, boot: &BootTimeline{VMStarted: time.Since(t0), Backend: vm.Backend()},
		sharePorts: req.SharePorts, log: m.log,
		disposable: spec.HostConfig.AutoRemove && len(spec.Mounts) == 0 && len(spec.RunShares) == 0}
	sp.mark("launch")
	if err := bringUp(bootCtx, c, spec, r, t0, sp); err != nil {
		r.abort()
		return nil, err
	}
	return r, nil
}

// attachNetwork joins the container to its network for this run and
// binds its published ports; nil without a Networks (the backend's NAT).
func (m *Manager) attachNetwork(ctx context.Context, spec Spec) (NetworkAttachment, error) {
	ports, err := network.FromPortMap(spec.HostConfig.PortBindings)
	if err != nil {
		return nil, err
	}
	if spec.HostConfig.PublishAllPorts && spec.Config != nil {
		ports = append(ports, network.PublishAll(spec.Config.ExposedPorts, spec.HostConfig.PortBindings)...)
	}
	mode := spec.NetworkName()
	if mode == network.None {
		return nil, nil
	}
	if m.networks == nil {
		if len(ports) > 0 {
			return nil, errdefs.InvalidArgument(errors.New("publishing ports needs Berth's networks, which this engine has not got (not on this backend yet): use the container's own IP"))
		}
		return nil, nil
	}
	req := network.AttachRequest{ContainerID: spec.ID, Name: spec.Name, Network: mode, Aliases: spec.Aliases, IP: spec.IP, DNS: spec.HostConfig.DNS, Ports: ports}
	if network.IsDefault(mode) {
		req.Network = ""
	}
	return m.networks.Attach(ctx, req)
}

// bringUp takes r's booted VM to a started main process, filling in r's
// agent, stdio, address and boot phases (since t0).
func bringUp(ctx context.Context, c *Container, spec Spec, r *running, t0 time.Time, sp *spans) error {
	var err error
	if r.agent, err = dialAgent(ctx, r.vm); err != nil {
		return fmt.Errorf("VM did not come up: %w\nconsole:\n%s", err, r.vm.ConsoleTail(20))
	}
	r.boot.AgentReady = time.Since(t0)
	sp.mark("agent")
	_ = r.agent.SetTime(ctx, time.Now())
	sp.mark("settime")
	if err := mountShares(ctx, r.agent, r.vm, spec.Mounts); err != nil {
		return err
	}
	if err := mountRunShares(ctx, c, r, spec.RunShares); err != nil {
		return err
	}
	sp.mark("shares")
	// The main process is created and attached while the guest's
	// network is configured; it starts once both are done.
	type created struct {
		stdio *agent.Attached
		err   error
	}
	cc := make(chan created, 1)
	go func() {
		stdio, err := createMain(ctx, c, r.agent, spec)
		cc <- created{stdio, err}
	}()
	r.guestNet, err = configureGuest(ctx, r.agent, r.vm, r.net, spec.Config, spec.HostConfig)
	if err == nil {
		sp.mark("configure")
		r.ip = guestInfo(ctx, r.agent, r.boot)
		sp.mark("info")
	}
	cr := <-cc
	sp.mark("created")
	if err == nil {
		err = cr.err
	}
	if err != nil {
		if cr.stdio != nil {
			cr.stdio.Close()
		}
		return err
	}
	if _, err := r.agent.StartProcess(ctx, mainProcess); err != nil {
		cr.stdio.Close()
		return processError(spec.Path, err)
	}
	r.stdio = cr.stdio
	sp.mark("startprocess")
	r.boot.ProcessUp = time.Since(t0)
	return nil
}

// mountShares mounts the container's binds and volumes in the guest:
// each share the VM was booted with, at its target, read-only where
// asked (before a read-only root, whose mount points they may need).
func mountShares(ctx context.Context, ac *agent.Client, vm VM, mounts []share.Mount) error {
	for i, s := range share.Plan(mounts) {
		gs := vm.GuestShare(s)
		opts := append([]string{}, gs.Options...)
		if s.ReadOnly {
			opts = append(opts, "ro")
		}
		req := &agentpb.MountRequest{Share: true, Source: gs.Source, Fstype: gs.Fstype, Subdir: gs.Subdir, Target: mounts[i].Target, Options: opts,
			CopyUp: mounts[i].CopyUp()}
		if err := ac.Mount(ctx, req); err != nil {
			return fmt.Errorf("mount %s on %s: %w", mounts[i].Source, mounts[i].Target, err)
		}
	}
	return nil
}

// configureGuest gives the guest its network (the backend's plan, or a
// DHCP lease the guest gets first where the backend says so), hostname,
// DNS and hosts, makes the container's root read-only when asked, and
// returns the network it configured. On a Berth
// network (att set) the container's one nameserver is the network's
// resolver, which its --dns servers are upstreams of (noted in
// resolv.conf, as Docker does); elsewhere they are its nameservers.
func configureGuest(ctx context.Context, ac *agent.Client, vm VM, att NetworkAttachment, cfg *mobycontainer.Config, hc *mobycontainer.HostConfig) (*vmm.GuestNetwork, error) {
	gn := vm.Network()
	if gn != nil && gn.DHCP {
		var err error
		if gn, err = leaseNetwork(ctx, ac, cfg.Hostname); err != nil {
			return nil, err
		}
	}
	net := networkRequest(gn)
	net.Hostname = cfg.Hostname
	for _, d := range hc.DNS {
		if att != nil {
			net.DnsUpstreams = append(net.DnsUpstreams, d.String())
		} else {
			net.DnsServers = append(net.DnsServers, d.String())
		}
	}
	if len(hc.DNSSearch) > 0 {
		net.DnsSearch = hc.DNSSearch
	}
	if len(hc.DNSOptions) > 0 {
		net.DnsOptions = slices.Clone(hc.DNSOptions)
	}
	if att != nil && !slices.ContainsFunc(net.DnsOptions, func(o string) bool { return strings.HasPrefix(o, "ndots:") }) {
		// As Docker does with its embedded resolver: a single-label name
		// (a container's) is asked as it is before any search domain.
		net.DnsOptions = append(net.DnsOptions, "ndots:0")
	}
	for _, h := range hc.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			continue
		}
		if ip == hostGateway {
			if att == nil {
				return nil, errdefs.InvalidArgument(fmt.Errorf("--add-host %s: host-gateway needs the container on a Berth network", h))
			}
			ip = att.HostAlias().String()
		}
		net.Hosts = append(net.Hosts, &agentpb.HostEntry{Ip: ip, Names: []string{name}})
	}
	if err := ac.ConfigureNetwork(ctx, net); err != nil {
		return nil, fmt.Errorf("configure network: %w", err)
	}
	if hc.ReadonlyRootfs {
		// The disk stays writable for the guest (resolv.conf, hosts and
		// hostname are written above); the container's root is not.
		if err := ac.Mount(ctx, &agentpb.MountRequest{Source: "rootfs", Target: "/", Options: []string{"remount", "bind", "ro"}}); err != nil {
			return nil, fmt.Errorf("make the root filesystem read-only: %w", err)
		}
	}
	return gn, nil
}

// guestInfo asks the guest for its address and boot times (recorded in
// tl); a guest that cannot say is not an error.
func guestInfo(ctx context.Context, ac *agent.Client, tl *BootTimeline) (ip string) {
	info, err := ac.Info(ctx)
	if err != nil {
		return ""
	}
	if len(info.Addresses) > 0 {
		ip, _, _ = strings.Cut(info.Addresses[0], "/")
	}
	if b := info.Boot; b != nil {
		tl.GuestInitStart = time.Duration(b.InitStartNs)
		tl.GuestModulesLoaded = time.Duration(b.ModulesLoadedNs)
		tl.GuestRootfsMounted = time.Duration(b.RootfsMountedNs)
		tl.GuestAgentServing = time.Duration(b.AgentServingNs)
	}
	return ip
}

// createMain creates the container's main process with its stdio wired
// to the container's output and input and attaches; StartProcess starts
// it.
func createMain(ctx context.Context, c *Container, ac *agent.Client, spec Spec) (*agent.Attached, error) {
	cfg, hc := spec.Config, spec.HostConfig
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
	if cfg.OpenStdin {
		c.mu.Lock()
		stdio.Stdin = c.stdin
		c.mu.Unlock()
	}
	ac.AssignPorts(req, stdio)
	if err := ac.CreateProcess(ctx, req); err != nil {
		return nil, processError(spec.Path, err)
	}
	return ac.Attach(ctx, req, stdio)
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
func processError(path string, err error) error {
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return &exitCodeError{127, errdefs.InvalidArgument(fmt.Errorf("exec: %q: executable file not found in $PATH: %w", path, err))}
	case errors.Is(err, errdefs.ErrPermissionDenied):
		return &exitCodeError{126, errdefs.InvalidArgument(fmt.Errorf("exec: %q: permission denied: %w", path, err))}
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
