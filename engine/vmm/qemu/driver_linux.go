//go:build linux

package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
)

// driver is the vmm.Driver of one qemu-system process: it starts QEMU,
// talks QMP to it, presses its power button, kills it, and says how it
// ended. The policy (when to do which) is vmm.VM's.
type driver struct {
	cfg   vmm.Config
	opts  options
	accel Accel

	mu         sync.Mutex
	cmd        *exec.Cmd
	qmp        *qmp
	dialer     transport.Dialer
	closers    []io.Closer // host ends of the sockets, closed when QEMU is gone
	sharePorts []net.Conn  // host ends of the spare share ports
	shutdown   string      // the reason of QMP's SHUTDOWN event
	stderr     strings.Builder

	*vmm.Ending // Exited and Exit: closed once QEMU is gone and released
}

var _ vmm.Driver = (*driver)(nil)

func newDriver(cfg vmm.Config, o options) *driver {
	accel, _ := resolveAccel(o.accel, cfg.Arch)
	return &driver{cfg: cfg, opts: o, accel: accel, Ending: vmm.NewEnding()}
}

// ShareFilesystem is "9p": boot-time shares are virtio-9p devices.
func (d *driver) ShareFilesystem() string { return "9p" }

// GuestShare: each share is its own virtio-9p device, mounted by its tag
// over virtio with 9P2000.L and a 512 KiB message size (the kernel's
// default of 128 KiB costs throughput on large reads and writes).
func (d *driver) GuestShare(s vmm.Share) vmm.GuestShare {
	return vmm.GuestShare{Fstype: "9p", Source: s.Tag, Options: []string{"trans=virtio", "version=9p2000.L", "msize=524288"}}
}

// SharePort is the host end of spare share port i: a socket QEMU's
// chardev for the port holds the other end of.
func (d *driver) SharePort(i int) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i < 0 || i >= len(d.sharePorts) {
		return nil, fmt.Errorf("share port %d: QEMU was started with %d", i, len(d.sharePorts))
	}
	return d.sharePorts[i], nil
}

// Backend is "qemu (ACCEL)" with the accelerator this VM runs under.
func (d *driver) Backend() string { return Describe(d.accel) }

// GuestNetwork is the Config's plan when the NIC joins a Link, else the
// fixed plan of QEMU's user-mode networking (-netdev user): the guest is
// 10.0.2.15/24 behind the gateway 10.0.2.2, with QEMU's DNS forwarder at
// 10.0.2.3.
func (d *driver) GuestNetwork() *vmm.GuestNetwork {
	cfg := d.config()
	if cfg.Network == nil {
		return nil
	}
	if p := cfg.Network.Plan; p != nil {
		plan := *p
		return &plan
	}
	return &vmm.GuestNetwork{
		Address: netip.MustParsePrefix("10.0.2.15/24"),
		Gateway: netip.MustParseAddr("10.0.2.2"),
		MTU:     1500,
		DNS:     []netip.Addr{netip.MustParseAddr("10.0.2.3")},
	}
}

// Dialer returns the agent transport; nil before Start.
func (d *driver) Dialer() transport.Dialer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dialer
}

// config is the VM's Config: the one it started with, or the one it was
// handed over to (Handover).
func (d *driver) config() vmm.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

func (d *driver) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

func (d *driver) control() *qmp {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.qmp
}

// channels are the host's and QEMU's ends of the sockets QEMU inherits.
type channels struct {
	qmp, console, agent net.Conn   // host ends; agent is nil with vsock
	nic                 net.Conn   // host end of the NIC's stream; nil without a Link
	shares              []net.Conn // host ends of the spare share ports
	child               []*os.File
	cid                 uint32
}

// Start launches QEMU and returns once QMP reports the VM running.
//
// It claims a vhost-vsock CID (or makes a socketpair for the
// virtio-serial agent port), makes socketpairs for QMP and the console,
// starts QEMU in its own process group with Pdeathsig, writes the pid
// file, and negotiates QMP.
func (d *driver) Start(ctx context.Context, console io.Writer) error {
	prog, err := d.program()
	if err != nil {
		d.finishUnstarted(err)
		return err
	}
	l := d.plan()
	ch, err := openChannels(l.vsock, d.cfg.Network != nil && d.cfg.Network.Link != nil, d.cfg.SharePorts)
	if err != nil {
		d.finishUnstarted(err)
		return err
	}
	l.cid = ch.cid
	if err := d.startProcess(prog, l, ch); err != nil {
		d.finishUnstarted(err)
		return err
	}
	go vmm.CopyConsole(console, ch.console)
	if ch.nic != nil {
		// Ends when QEMU is gone and reap closes the host end.
		go d.cfg.Network.Link.ServeStream(ch.nic)
	}
	return d.connect(ctx, ch, l.vsock)
}

// program is the QEMU binary to run.
func (d *driver) program() (string, error) {
	if d.opts.binary != "" {
		return d.opts.binary, nil
	}
	name, _ := binary(d.cfg.Arch)
	p, err := exec.LookPath(name)
	if err != nil {
		return "", errdefs.Unavailable(fmt.Errorf("%s not found in PATH (Debian: apt-get install %s): %w", name, qemuPackage(d.cfg.Arch), err))
	}
	return p, nil
}

// plan decides the parts of the command line that depend on the host.
func (d *driver) plan() launch {
	l := launch{accel: d.accel}
	if d.cfg.Arch == "amd64" && !snapshotLayout(d.cfg) {
		// Templates boot with SeaBIOS (vmgenid needs its ACPI tables);
		// the firmware runs once, at the template's boot.
		l.bios = findQboot()
	}
	switch d.opts.transport {
	case TransportVsock:
		l.vsock = true
	case TransportAuto:
		l.vsock = VhostVsockAvailable()
	}
	return l
}

// openChannels makes the sockets (and with vsock the vhost-vsock
// descriptor) QEMU inherits, in the order of fdQMP, fdConsole, fdAgent,
// with nic fdNet, then one socket per spare share port (fdSharePort).
func openChannels(vsock, nic bool, sharePorts int) (ch channels, err error) {
	defer func() {
		if err != nil {
			ch.closeAll()
		}
	}()
	var f *os.File
	if ch.qmp, f, err = socketPair("qmp"); err != nil {
		return ch, err
	}
	ch.child = append(ch.child, f)
	if ch.console, f, err = socketPair("console"); err != nil {
		return ch, err
	}
	ch.child = append(ch.child, f)
	if vsock {
		f, ch.cid, err = openVhostVsock()
	} else {
		ch.agent, f, err = socketPair("agent")
	}
	if err != nil {
		return ch, err
	}
	ch.child = append(ch.child, f)
	if nic {
		if ch.nic, f, err = socketPair("nic"); err != nil {
			return ch, err
		}
		ch.child = append(ch.child, f)
	}
	for i := range sharePorts {
		c, f, err := socketPair("share" + fmt.Sprint(i))
		if err != nil {
			return ch, err
		}
		ch.shares = append(ch.shares, c)
		ch.child = append(ch.child, f)
	}
	return ch, nil
}

func (ch channels) hostEnds() []io.Closer {
	var out []io.Closer
	for _, c := range append([]net.Conn{ch.qmp, ch.console, ch.agent, ch.nic}, ch.shares...) {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

func (ch channels) closeChild() {
	for _, f := range ch.child {
		f.Close()
	}
}

func (ch channels) closeAll() {
	ch.closeChild()
	for _, c := range ch.hostEnds() {
		c.Close()
	}
}

// startProcess runs QEMU with the child ends of ch, writes the pid file
// and starts reaping it.
func (d *driver) startProcess(prog string, l launch, ch channels) error {
	defer ch.closeChild() // QEMU has its copies once it runs
	cmd := exec.Command(prog, commandLine(d.cfg, l)...)
	cmd.ExtraFiles = ch.child
	cmd.Stderr = &lockedWriter{mu: &d.mu, w: &d.stderr}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a ^C meant for the engine does not
		// reach QEMU before the engine has stopped the guest.
		Setpgid: true,
		// Dies with the engine. (Pdeathsig follows the thread that
		// forked; the Go runtime does not end threads of goroutines
		// that are not locked to them, and Sweep covers the rest.)
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		for _, c := range ch.hostEnds() {
			c.Close()
		}
		return errdefs.Unavailable(fmt.Errorf("run %s: %w", prog, err))
	}
	d.mu.Lock()
	d.cmd = cmd
	d.closers = ch.hostEnds()
	d.sharePorts = ch.shares
	d.mu.Unlock()
	if err := d.writePidFile(d.cfg); err != nil {
		// The VM runs; without a pid file only Sweep is weaker.
		fmt.Fprintf(cmd.Stderr, "berth: %v\n", err)
	}
	go d.reap()
	return nil
}

// connect negotiates QMP, sets up the agent transport and waits for QEMU
// to report the VM running.
func (d *driver) connect(ctx context.Context, ch channels, vsock bool) error {
	q, err := newQMP(ctx, ch.qmp, d.onEvent)
	if err != nil {
		return err
	}
	var dl transport.Dialer
	if vsock {
		dl = transport.VsockDialer{CID: ch.cid}
	} else {
		md, err := transport.NewMuxDialer(ch.agent)
		if err != nil {
			return err
		}
		dl = md
	}
	d.mu.Lock()
	d.qmp = q
	d.dialer = dl
	d.mu.Unlock()
	if d.cfg.Restore != "" {
		if err := d.resume(ctx, q); err != nil {
			return err
		}
	}
	st, err := q.status(ctx)
	if err != nil {
		return err
	}
	if st != "running" {
		return fmt.Errorf("qemu reports the VM %q, not running", st)
	}
	return nil
}

// finishUnstarted ends a driver whose QEMU never ran.
func (d *driver) finishUnstarted(err error) {
	d.Finish(vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: "qemu did not start: " + err.Error()}, nil)
}

func qemuPackage(arch string) string {
	if arch == "arm64" {
		return "qemu-system-arm"
	}
	return "qemu-system-x86"
}

// writePidFile writes the pid file of QEMU running the VM of cfg (the
// one it started with, or the one it was handed to).
func (d *driver) writePidFile(cfg vmm.Config) error {
	self, err := procStart(os.Getpid())
	if err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	pid := d.pid()
	start, err := procStart(pid)
	if err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return writePidFile(filepath.Join(cfg.StateDir, PidFileName), pidFile{
		ID: cfg.ID, PID: pid, Start: start, EnginePID: os.Getpid(), EngineStart: self,
	})
}

// onEvent records QMP events that explain how the VM ends.
func (d *driver) onEvent(ev qmpEvent) {
	switch ev.Event {
	case "SHUTDOWN":
		var data struct {
			Reason string `json:"reason"`
		}
		json.Unmarshal(ev.Data, &data)
		d.mu.Lock()
		if d.shutdown == "" {
			d.shutdown = data.Reason
		}
		d.mu.Unlock()
	case "GUEST_PANICKED":
		d.mu.Lock()
		d.shutdown = "guest-panic"
		d.mu.Unlock()
	}
}

// reap waits for QEMU to exit, works out why it ended, and releases
// everything.
func (d *driver) reap() {
	err := d.cmd.Wait()
	now := time.Now()
	d.mu.Lock()
	cs := d.closers
	d.closers = nil
	dl := d.dialer
	d.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
	if c, ok := dl.(io.Closer); ok {
		c.Close()
	}
	os.Remove(filepath.Join(d.config().StateDir, PidFileName))
	d.mu.Lock()
	exit := d.exitReason(err)
	d.mu.Unlock()
	exit.At = now
	d.Finish(exit, nil)
}

// exitReason classifies QEMU's end. Call with d.mu held.
func (d *driver) exitReason(waitErr error) vmm.Exit {
	switch d.shutdown {
	case "guest-shutdown":
		return vmm.Exit{Reason: vmm.ExitPowerOff, Detail: "the guest powered off"}
	case "guest-panic":
		return vmm.Exit{Reason: vmm.ExitPanic, Detail: "QEMU reported a guest panic"}
	case "guest-reset":
		return vmm.Exit{Reason: vmm.ExitReboot, Detail: "the guest rebooted"}
	case "host-signal":
		return vmm.Exit{Reason: vmm.ExitKilled, Detail: "qemu got a termination signal from outside Berth"}
	}
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return vmm.Exit{Reason: vmm.ExitKilled, Detail: fmt.Sprintf("qemu (pid %d) was killed by signal %v from outside Berth", d.cmd.Process.Pid, ws.Signal())}
		}
	}
	detail := "qemu exited"
	if waitErr != nil {
		detail = "qemu: " + waitErr.Error()
	}
	if s := strings.TrimSpace(d.stderr.String()); s != "" {
		detail += ": " + lastLines(s, 5)
	} else if d.shutdown != "" {
		detail += " (shutdown reason " + d.shutdown + ")"
	}
	return vmm.Exit{Reason: vmm.ExitHypervisorError, Detail: detail}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// RequestStop presses the power button: QMP system_powerdown (ACPI on
// x86, PSCI on arm64).
func (d *driver) RequestStop(ctx context.Context) error {
	q := d.control()
	if q == nil {
		return errors.New("qemu has no QMP connection")
	}
	_, err := q.execute(ctx, "system_powerdown", nil)
	return err
}

// HardStop ends QEMU: QMP quit, then SIGKILL to its process group if it
// has not exited within a second.
func (d *driver) HardStop(ctx context.Context) error {
	select {
	case <-d.Exited():
		return nil
	default:
	}
	if q := d.control(); q != nil {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		q.execute(qctx, "quit", nil)
		cancel()
	}
	select {
	case <-d.Exited():
		return nil
	case <-time.After(time.Second):
	}
	if pid := d.pid(); pid > 0 {
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill qemu %d: %w", pid, err)
		}
	}
	return nil
}

// socketPair returns two connected unix stream sockets: the host's end as
// a net.Conn and QEMU's as a file to inherit.
func socketPair(name string) (net.Conn, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair for %s: %w", name, err)
	}
	hf := os.NewFile(uintptr(fds[0]), name+"-host")
	defer hf.Close()
	c, err := net.FileConn(hf)
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair for %s: %w", name, err)
	}
	return c, os.NewFile(uintptr(fds[1]), name+"-qemu"), nil
}

// lockedWriter collects QEMU's stderr under the driver's lock.
type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() < 64<<10 {
		l.w.Write(b)
	}
	return len(b), nil
}
