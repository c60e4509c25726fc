package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/internal/guest"
)

// rootDir is where the rootfs disk is mounted; containers are rooted there.
const rootDir = "/run/berth/rootfs"

// Boot prepares the VM and serves the agent until the host asks for a
// shutdown; it never returns. In order, it:
//
//  1. notes the boot clock (the "init start" timestamp of Info);
//  2. lowers the Go heap target (the guest's memory is the container's);
//  3. mounts devtmpfs on /dev and points fds 0-2 at /dev/console if the
//     kernel could not;
//  4. loads the kernel modules listed in /lib/modules/load.order
//     (finit_module, in that order), opens those late.order lists (9p,
//     virtiofs, overlay: not needed to serve) and deletes them all from
//     the initramfs;
//  5. reopens its output on /dev/hvc0 when a virtio console appeared;
//  6. leaves the initramfs: moves /dev onto a fresh tmpfs and chroots
//     into it, since pivot_root(2), which container inits use, refuses
//     an initramfs root;
//  7. mounts /proc, /sys, /sys/fs/cgroup (cgroup2), /dev/pts, /dev/shm,
//     /dev/mqueue, /run and /tmp;
//  8. reads its berth.* parameters from /proc/cmdline;
//  9. waits for the rootfs disk (berth.root) and mounts it on
//     /run/berth/rootfs, as a shared mount so that later mounts under it
//     reach running containers;
//  10. brings up the loopback interface;
//  11. opens the agent transport: vsock, or yamux over the virtio-serial
//     port named berth.agent (berth.transport=serial);
//  12. serves the agent API on port 1024, reaping every orphan, with
//     a recover around every handler, and once it serves loads the late
//     modules (a Mount that needs them waits for them);
//  13. on the host's Shutdown, after a main process created with
//     shutdown_on_exit exits, on SIGTERM/SIGINT/SIGPWR, or when a step
//     above fails: kills every process, syncs, unmounts the rootfs (or
//     remounts it read-only) and powers off.
func Boot() {
	b := &booter{}
	b.times.InitStart = bootClock()
	b.logger = log.New(bootClockWriter{os.Stderr}, "", 0)
	defer func() {
		if r := recover(); r != nil {
			b.logger.Printf("panic: %v\n%s", r, debug.Stack())
			b.powerOff(false)
		}
	}()
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(20 << 20)
	if err := b.run(); err != nil {
		b.logger.Printf("boot failed: %v", err)
	}
	b.powerOff(false)
}

type booter struct {
	logger *log.Logger
	times  guest.BootTimes
	cfg    bootConfig
	late   []lateModule // opened at boot, loaded once the agent serves
}

func (b *booter) run() error {
	if err := mountDev(); err != nil {
		return err
	}
	ensureConsole()
	b.logger.Printf("guestinit %s starting", version)
	loaded := b.loadModules()
	b.times.ModulesLoaded = bootClock()
	b.useVirtioConsole(loaded)
	if err := leaveInitramfs(); err != nil {
		return err
	}
	if err := mountSystem(b.logger); err != nil {
		return err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read kernel command line: %w", err)
	}
	if b.cfg, err = parseCmdline(string(cmdline)); err != nil {
		return err
	}
	if b.cfg.Template {
		// The root disk is the restored VM's, mounted by FinishRestore;
		// the template's own is never read.
		b.logger.Printf("template mode: the root disk is mounted after a restore")
	} else {
		if err := b.mountRootfs(); err != nil {
			return err
		}
		b.times.RootfsMounted = bootClock()
	}
	configureLoopback(b.logger)
	l, err := b.openTransport()
	if err != nil {
		return err
	}
	return b.serve(l)
}

// bootClock is CLOCK_BOOTTIME: time since the kernel started.
func bootClock() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Duration(ts.Nano())
}

// bootClockWriter prefixes each log line with the boot clock, as the
// kernel's own messages are.
type bootClockWriter struct{ w io.Writer }

func (w bootClockWriter) Write(p []byte) (int, error) {
	t := bootClock()
	_, err := fmt.Fprintf(w.w, "[%5d.%06d] guestinit: %s", t/time.Second, (t%time.Second)/time.Microsecond, p)
	return len(p), err
}

// mountDev mounts devtmpfs on /dev (unless the kernel did).
func mountDev() error {
	if err := os.MkdirAll("/dev", 0o755); err != nil {
		return fmt.Errorf("create /dev: %w", err)
	}
	err := unix.Mount("devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount devtmpfs on /dev: %w", err)
	}
	return nil
}

// ensureConsole points fds 0-2 at /dev/console when the kernel could not
// open it for init (an initramfs without a /dev/console node, or a
// console= whose driver is still a module): the Go runtime has then put
// /dev/null there — it refuses to start with them closed, which is why
// the initramfs must hold /dev/null.
func ensureConsole() {
	for fd := 0; fd < 3; fd++ {
		if !isDevNull(fd) {
			continue
		}
		cfd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return // no console yet: keep /dev/null
		}
		unix.Dup3(cfd, fd, 0)
		unix.Close(cfd)
	}
}

// isDevNull reports whether fd is closed or open on /dev/null (c 1 3).
func isDevNull(fd int) bool {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return true
	}
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == unix.Mkdev(1, 3)
}

// loadModules loads the modules the initramfs lists, in order, logging
// (not failing on) the ones the kernel refuses — a module may be built
// in, or not apply to this CPU (crc32c-intel under TCG). It returns the
// module names loaded.
func (b *booter) loadModules() map[string]bool {
	loaded := map[string]bool{}
	f, err := os.Open(loadOrderPath)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			b.logger.Printf("modules: %v", err)
		}
		return loaded
	}
	entries, err := parseLoadOrder(f)
	f.Close()
	if err != nil {
		b.logger.Printf("modules: %v", err)
		return loaded
	}
	start := time.Now()
	for _, e := range entries {
		name := strings.SplitN(filepath.Base(e.Path), ".ko", 2)[0]
		if err := loadModule(e); err != nil {
			b.logger.Printf("modules: %s: %v", name, err)
			continue
		}
		loaded[strings.ReplaceAll(name, "-", "_")] = true
	}
	b.logger.Printf("modules: loaded %d of %d in %v", len(loaded), len(entries), time.Since(start).Round(time.Millisecond))
	b.late = openLateModules(b.logger)
	os.RemoveAll("/lib/modules") // frees the initramfs copies (open late ones stay until loaded)
	return loaded
}

// lateModule is a module of late.order, opened before guestinit leaves
// the initramfs (its files are out of reach by path after that).
type lateModule struct {
	name  string
	f     *os.File
	entry moduleEntry
}

// openLateModules opens the modules late.order lists.
func openLateModules(logger *log.Logger) []lateModule {
	f, err := os.Open(lateOrderPath)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logger.Printf("late modules: %v", err)
		}
		return nil
	}
	entries, err := parseLoadOrder(f)
	f.Close()
	if err != nil {
		logger.Printf("late modules: %v", err)
		return nil
	}
	var out []lateModule
	for _, e := range entries {
		mf, err := os.Open(e.Path)
		if err != nil {
			logger.Printf("late modules: %v", err)
			continue
		}
		out = append(out, lateModule{name: strings.SplitN(filepath.Base(e.Path), ".ko", 2)[0], f: mf, entry: e})
	}
	return out
}

// loadLateModules loads the late modules in order, once the agent serves,
// and closes done when they are in (or failed, logged).
func (b *booter) loadLateModules(srv *guest.Server, done chan<- struct{}) {
	defer close(done)
	select {
	case <-srv.Serving():
	case <-time.After(30 * time.Second):
	}
	start := time.Now()
	n := 0
	for _, m := range b.late {
		err := finitModule(m.f, m.entry)
		m.f.Close()
		if err != nil {
			b.logger.Printf("late modules: %s: %v", m.name, err)
			continue
		}
		n++
	}
	b.logger.Printf("late modules: loaded %d of %d in %v", n, len(b.late), time.Since(start).Round(time.Millisecond))
	b.late = nil
}

func loadModule(e moduleEntry) error {
	f, err := os.Open(e.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	return finitModule(f, e)
}

// finitModule loads the module open in f.
func finitModule(f *os.File, e moduleEntry) error {
	flags := 0
	if !strings.HasSuffix(e.Path, ".ko") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE // .ko.xz, .ko.zst, .ko.gz
	}
	err := unix.FinitModule(int(f.Fd()), e.Params, flags)
	if errors.Is(err, unix.EEXIST) {
		return nil // already loaded or built in
	}
	return err
}

// useVirtioConsole moves fds 1 and 2 to /dev/hvc0 when a virtio console
// exists (Virtualization.framework's console), else keeps the kernel's
// console (ttyS0 under QEMU).
func (b *booter) useVirtioConsole(loaded map[string]bool) {
	deadline := time.Now()
	if loaded["virtio_console"] {
		deadline = deadline.Add(200 * time.Millisecond) // devtmpfs adds the node asynchronously
	}
	for {
		fd, err := unix.Open("/dev/hvc0", unix.O_WRONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Dup3(fd, 1, 0)
			unix.Dup3(fd, 2, 0)
			unix.Close(fd)
			b.logger.Printf("console: logging to /dev/hvc0")
			return
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leaveInitramfs makes a tmpfs the root: the initramfs root cannot be
// pivoted away from, and container inits pivot_root.
func leaveInitramfs() error {
	const newRoot = "/.berth-root"
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	if err := unix.Mount("tmpfs", newRoot, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("leave initramfs: mount tmpfs: %w", err)
	}
	if err := os.Mkdir(newRoot+"/dev", 0o755); err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	if err := unix.Mount("/dev", newRoot+"/dev", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("leave initramfs: move /dev: %w", err)
	}
	// Keep this binary reachable by path in the new root (no copy: a bind
	// mount), for the container inits that start main processes as it.
	if f, err := os.OpenFile(newRoot+"/init", os.O_CREATE|os.O_RDONLY, 0o500); err == nil {
		f.Close()
	}
	if err := unix.Mount("/init", newRoot+"/init", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("leave initramfs: keep /init: %w", err)
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("leave initramfs: move the new root onto /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("leave initramfs: chroot: %w", err)
	}
	return unix.Chdir("/")
}

type sysMount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	optional               bool
}

// mountSystem mounts the pseudo filesystems every Linux program expects.
func mountSystem(logger *log.Logger) error {
	const nsd = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	mounts := []sysMount{
		{"proc", "/proc", "proc", nsd, "", false},
		{"sysfs", "/sys", "sysfs", nsd, "", false},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", nsd, "", true},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", false},
		{"shm", "/dev/shm", "tmpfs", nsd, "mode=1777", false},
		{"mqueue", "/dev/mqueue", "mqueue", nsd, "", true},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", false},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", false},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", m.target, err)
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			if m.optional {
				logger.Printf("mount %s on %s: %v (continuing without it)", m.fstype, m.target, err)
				continue
			}
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	// The pty master multiplexer of the new devpts instance.
	os.Remove("/dev/ptmx")
	if err := os.Symlink("pts/ptmx", "/dev/ptmx"); err != nil {
		return fmt.Errorf("link /dev/ptmx: %w", err)
	}
	return nil
}

// mountRootfs waits for the rootfs disk to appear (its driver may have
// just been loaded) and mounts it on rootDir, shared.
func (b *booter) mountRootfs() error {
	if err := os.MkdirAll(rootDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", rootDir, err)
	}
	if b.cfg.Root == "" {
		b.logger.Printf("rootfs: no berth.root on the kernel command line; containers get an empty tmpfs")
	} else {
		if err := waitForPath(b.cfg.Root, 10*time.Second); err != nil {
			return fmt.Errorf("rootfs: %w (is its driver, virtio_blk, built in or in load.order?)", err)
		}
		flags, data := guest.ParseMountOptions(b.cfg.RootFlags)
		if err := unix.Mount(b.cfg.Root, rootDir, b.cfg.RootFSType, flags, data); err != nil {
			return fmt.Errorf("rootfs: mount %s (%s) on %s: %w", b.cfg.Root, b.cfg.RootFSType, rootDir, err)
		}
		b.logger.Printf("rootfs: mounted %s (%s)", b.cfg.Root, b.cfg.RootFSType)
	}
	if err := unix.Mount("", rootDir, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		// A plain directory is not a mount point: bind it first.
		if err := unix.Mount(rootDir, rootDir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("rootfs: bind %s: %w", rootDir, err)
		}
		if err := unix.Mount("", rootDir, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("rootfs: make %s shared: %w", rootDir, err)
		}
	}
	return nil
}

func waitForPath(p string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := os.Stat(p)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v: %w", p, timeout, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// configureLoopback brings lo up; a failure is logged, not fatal.
func configureLoopback(logger *log.Logger) {
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		logger.Printf("network: bring lo up: %v", err)
	}
}

// openTransport returns the agent's listener for berth.transport.
func (b *booter) openTransport() (transport.Listener, error) {
	switch b.cfg.Transport {
	case "serial":
		var path string
		deadline := time.Now().Add(10 * time.Second)
		for {
			p, err := transport.FindVirtioPort(b.cfg.SerialPort)
			if err == nil {
				path = p
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("transport: %w (is virtio_console loaded?)", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := waitForPath(path, 2*time.Second); err != nil {
			return nil, fmt.Errorf("transport: %w", err)
		}
		port, err := transport.OpenVirtioPortPath(path)
		if err != nil {
			return nil, fmt.Errorf("transport: %w", err)
		}
		b.logger.Printf("transport: yamux over virtio-serial %s (%s)", b.cfg.SerialPort, path)
		return transport.NewMuxListener(port, b.logger)
	default:
		b.logger.Printf("transport: vsock")
		return transport.Vsock{}, nil
	}
}

// mountRootAfterRestore is the agent's MountRoot in template mode (nil
// otherwise): once the root disk shows the size the host attached, its
// buffer cache (the template disk's blocks) is dropped and it is mounted
// as a cold boot mounts it.
func (b *booter) mountRootAfterRestore() func(ctx context.Context, size uint64) error {
	if !b.cfg.Template {
		return nil
	}
	return func(ctx context.Context, size uint64) error {
		if b.cfg.Root != "" {
			start := time.Now()
			if err := guest.WaitBlockSize(ctx, b.cfg.Root, size, 5*time.Second); err != nil {
				return fmt.Errorf("rootfs: %w", err)
			}
			b.logger.Printf("rootfs: %s has its %d bytes after %v", b.cfg.Root, size, time.Since(start).Round(time.Microsecond))
		}
		if err := b.mountRootfs(); err != nil {
			return err
		}
		b.times.RootfsMounted = bootClock()
		return nil
	}
}

// serve runs the agent until a shutdown is asked for.
func (b *booter) serve(l transport.Listener) error {
	stop := make(chan bool, 1)
	lateDone := make(chan struct{})
	srv, err := guest.NewServer(guest.Config{
		LateModules:    lateDone,
		Rootfs:         rootDir,
		Listener:       l,
		Logger:         b.logger,
		Version:        version,
		Boot:           b.times,
		ConfigureLinks: true,
		SetClock:       true,
		ReapAll:        true,
		WatchOOM:       true,
		LogCalls:       b.cfg.Debug,
		Shutdown: func(reboot bool) {
			select {
			case stop <- reboot:
			default:
			}
		},
		MountRoot:    b.mountRootAfterRestore(),
		CgroupParent: cgroupParent(b.logger),
	})
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGPWR)
	signal.Ignore(unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx) }()
	go b.loadLateModules(srv, lateDone)
	go func() {
		<-srv.Serving()
		b.logger.Printf("agent serving, %v after kernel start", bootClock().Round(time.Millisecond))
		if b.cfg.Template {
			<-lateDone
			b.logger.Printf("%s", agentpb.TemplateReady)
		}
	}()
	reboot := false
	select {
	case reboot = <-stop:
	case sig := <-sigs:
		b.logger.Printf("got %v: shutting down", sig)
	case err := <-errc:
		return fmt.Errorf("agent: %w", err)
	}
	cancel()
	b.shutdown(reboot)
	return nil
}

// shutdown stops every process, syncs and unmounts the rootfs, then
// powers off or reboots. It never returns.
func (b *booter) shutdown(reboot bool) {
	unix.Kill(-1, unix.SIGKILL)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, 0, nil); errors.Is(err, unix.ECHILD) {
			break
		}
	}
	b.powerOff(reboot)
}

// powerOff syncs, unmounts what is mounted under the rootfs and the
// rootfs itself (read-only remount when busy), and powers off.
func (b *booter) powerOff(reboot bool) {
	unix.Sync()
	unmountUnder(b.logger, rootDir)
	unix.Sync()
	cmd, what := unix.LINUX_REBOOT_CMD_POWER_OFF, "powering off"
	if reboot {
		cmd, what = unix.LINUX_REBOOT_CMD_RESTART, "rebooting"
	}
	b.logger.Printf("%s", what)
	for {
		if err := unix.Reboot(cmd); err != nil {
			b.logger.Printf("reboot(2): %v", err)
		}
		time.Sleep(time.Second)
	}
}

// unmountUnder unmounts every mount at or below dir, deepest first; when
// dir itself stays busy it is remounted read-only so the journal is clean.
func unmountUnder(logger *log.Logger, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	for i := len(points) - 1; i >= 0; i-- { // mountinfo lists parents first
		p := points[i]
		if p != dir {
			if err := unix.Unmount(p, 0); err != nil && !errors.Is(err, unix.EINVAL) {
				unix.Unmount(p, unix.MNT_DETACH)
			}
			continue
		}
		unmountRoot(logger, p)
	}
}

// unmountRoot unmounts the rootfs, retrying for a second while killed
// processes finish exiting; if it stays busy, it remounts it read-only,
// which flushes it and leaves the journal clean.
func unmountRoot(logger *log.Logger, p string) {
	var err error
	for range 10 {
		if err = unix.Unmount(p, 0); err == nil || errors.Is(err, unix.EINVAL) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	logger.Printf("rootfs: unmount %s: %v; remounting it read-only", p, err)
	if err := unix.Mount("", p, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		logger.Printf("rootfs: read-only remount failed too: %v (synced; ext4's journal covers the rest)", err)
	}
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupParent is where containers get their cgroups: /sys/fs/cgroup/berth
// when /sys/fs/cgroup is cgroup2 (mountSystem's mount may have failed, it
// is optional), else "" (the containers stay in guestinit's cgroup).
func cgroupParent(logger *log.Logger) string {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		logger.Printf("no cgroup2 at /sys/fs/cgroup: containers get no cgroup of their own")
		return ""
	}
	return "/sys/fs/cgroup/berth"
}
