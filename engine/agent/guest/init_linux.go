package guest

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/user"
)

// containerInitArg0 is argv[0] of a container init; ps in the container
// shows it as PID 1.
const containerInitArg0 = "berth-init"

// ctlFd is the control socket's descriptor in the container init.
const ctlFd = 3

// defaultPath is PATH when the process's environment sets none (Docker's).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// RunIfContainerInit runs the container init and exits when this process
// was started as one (argv[0] is "berth-init"); otherwise it returns at
// once. Call it first in main and in TestMain of packages that start
// containers.
func RunIfContainerInit() {
	if filepath.Base(os.Args[0]) == mainStageArg0 {
		runMainStage()
	}
	if filepath.Base(os.Args[0]) != containerInitArg0 {
		return
	}
	// ps shows the main thread's name: make it ours, not the binary's.
	os.WriteFile("/proc/self/comm", []byte(containerInitArg0), 0)
	debug.SetGCPercent(25)
	debug.SetMemoryLimit(16 << 20)
	logger := log.New(os.Stderr, "berth-init: ", log.LstdFlags|log.Lmicroseconds)
	if err := containerInit(logger); err != nil {
		logger.Print(err)
		os.Exit(1)
	}
	os.Exit(0)
}

// containerInit receives the init message, prepares the namespaces and
// serves start and signal requests until the main process exits. See the
// package comment for the steps.
func containerInit(logger *log.Logger) error {
	ctl, err := fileCtl(os.NewFile(ctlFd, "ctl"))
	if err != nil {
		return err
	}
	m, files, err := ctl.recv()
	closeAll(files)
	if err != nil {
		return fmt.Errorf("read init message: %w", err)
	}
	if m.Op != opInit || m.Init == nil {
		return fmt.Errorf("read init message: got %q", m.Op)
	}
	if err := setupContainer(m.Init); err != nil {
		ctl.send(errorMsg("", err))
		return err
	}
	sv := &initServer{ctl: ctl, logger: logger, procs: map[int]string{}}
	if err := ctl.send(&ctlMsg{Op: opReady}); err != nil {
		return err
	}
	return sv.serve()
}

// setupContainer does steps 1-4 of the package comment.
func setupContainer(spec *initSpec) error {
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make mounts slaves: %w", err)
	}
	root := spec.Rootfs
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s: %w", root, err)
	}
	if err := mountContainerFilesystems(root); err != nil {
		return err
	}
	if err := exposeStage(root, spec.StageExe); err != nil {
		return err
	}
	if err := pivotRoot(root); err != nil {
		return err
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", spec.Hostname, err)
		}
	}
	return nil
}

// containerMount is one filesystem a container init mounts at target, a
// path relative to the rootfs.
type containerMount struct {
	target, fstype, source string
	flags                  uintptr
	data                   string
}

// containerMounts are the filesystems every container gets, in order:
// proc, sysfs (read-only), a tmpfs /dev, the guest's /dev/pts, and /dev/shm
// and /dev/mqueue of its own.
func containerMounts() []containerMount {
	const nsd = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	return []containerMount{
		{target: "proc", fstype: "proc", source: "proc", flags: nsd},
		{target: "sys", fstype: "sysfs", source: "sysfs", flags: nsd | unix.MS_RDONLY},
		{target: "dev", fstype: "tmpfs", source: "tmpfs", flags: unix.MS_NOSUID | unix.MS_STRICTATIME, data: "mode=755,size=65536k"},
		{target: "dev/pts", source: "/dev/pts", flags: unix.MS_BIND},
		{target: "dev/shm", fstype: "tmpfs", source: "shm", flags: nsd, data: "mode=1777,size=65536k"},
		{target: "dev/mqueue", fstype: "mqueue", source: "mqueue", flags: nsd},
	}
}

// makeMountPoints creates, in the rootfs itself, the directories the
// container mounts go on (those not inside another container mount), so
// that a container starts on an image that lacks them even once the
// rootfs is read-only (docker run --read-only), as runc does.
func makeMountPoints(root string) error {
	for _, m := range containerMounts() {
		if strings.Contains(m.target, "/") {
			continue // inside the /dev tmpfs
		}
		if err := mkdirInRoot(root, m.target); err != nil {
			return fmt.Errorf("create mount point /%s in the rootfs: %w", m.target, err)
		}
	}
	return nil
}

// mountContainerFilesystems mounts containerMounts inside root and fills
// /dev.
func mountContainerFilesystems(root string) error {
	for _, m := range containerMounts() {
		if err := mountIn(root, m); err != nil {
			return err
		}
	}
	dev, err := resolveInRoot(root, "dev")
	if err != nil {
		return fmt.Errorf("find /dev in the container: %w", err)
	}
	return populateDev(dev)
}

// mountIn mounts m inside root, creating its mount point; symlinks on the
// way resolve inside root.
func mountIn(root string, m containerMount) error {
	if err := mkdirInRoot(root, m.target); err != nil {
		return fmt.Errorf("create mount point /%s in the container: %w", m.target, err)
	}
	fd, err := openInRoot(root, m.target)
	if err != nil {
		return fmt.Errorf("open mount point /%s in the container: %w", m.target, err)
	}
	defer unix.Close(fd)
	if err := unix.Mount(m.source, fdPath(fd), m.fstype, m.flags, m.data); err != nil {
		return fmt.Errorf("mount %s on /%s in the container: %w", m.source, m.target, err)
	}
	return nil
}

// populateDev fills the container's /dev tmpfs: device nodes bound from
// the guest's /dev, and the usual symlinks.
func populateDev(dev string) error {
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := filepath.Join(dev, n)
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o666)
		if err != nil {
			return fmt.Errorf("create /dev/%s in the container: %w", n, err)
		}
		f.Close()
		if err := unix.Mount("/dev/"+n, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s into the container: %w", n, err)
		}
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("link /dev/%s in the container: %w", l[1], err)
		}
	}
	return nil
}

// pivotRoot makes root the root of this mount namespace and detaches the
// old root (runc's pivot_root(".", ".") way, which needs no directory).
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("enter rootfs %s: %w", root, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// initServer is the container init's request loop and reaper.
type initServer struct {
	ctl    *ctlConn
	logger *log.Logger

	mu      sync.Mutex // held across fork+record, and by the reaper
	procs   map[int]string
	mainPid int
	mainID  string
	done    bool
}

// serve runs the reaper and signal forwarder, and answers requests until
// the main process has exited and everything left is reaped.
func (s *initServer) serve() error {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	go s.requests()
	for sig := range sigs {
		ss, ok := sig.(syscall.Signal)
		if !ok {
			continue
		}
		switch ss {
		case unix.SIGCHLD:
			if s.reap() {
				return nil
			}
		case unix.SIGURG, unix.SIGPIPE:
			// Go's preemption signal; broken pipes are the writer's concern.
		default:
			s.forward(ss)
		}
	}
	return nil
}

// forward sends sig, which the init received, to the main process.
func (s *initServer) forward(sig syscall.Signal) {
	s.mu.Lock()
	pid := s.mainPid
	s.mu.Unlock()
	if pid > 0 {
		unix.Kill(pid, sig)
	}
}

// reap collects every exited child, reports the ones guestinit started,
// and, once the main process is gone, kills and reaps the rest. It reports
// true when the init should exit.
func (s *initServer) reap() bool {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			s.mu.Lock()
			done := s.done
			s.mu.Unlock()
			// ECHILD with the main process gone: nothing is left.
			return done && errors.Is(err, unix.ECHILD)
		}
		s.mu.Lock()
		id, known := s.procs[pid]
		delete(s.procs, pid)
		isMain := pid == s.mainPid
		if isMain {
			s.done = true
		}
		s.mu.Unlock()
		if known {
			code, sig := exitCode(ws)
			s.ctl.send(&ctlMsg{Op: opExit, ID: id, ExitCode: code, Sig: sig})
		}
		if isMain {
			// The container ends with its main process: end the rest.
			unix.Kill(-1, unix.SIGKILL)
		}
	}
}

// exitCode is a wait status as a shell reports it: the exit status, or
// 128+n for a death by signal n.
func exitCode(ws unix.WaitStatus) (code, sig int) {
	switch {
	case ws.Exited():
		return ws.ExitStatus(), 0
	case ws.Signaled():
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return 255, 0
}

// requests answers guestinit's start and signal requests. When the
// control socket ends, guestinit is gone: the container ends too.
func (s *initServer) requests() {
	for {
		m, files, err := s.ctl.recv()
		if err != nil {
			s.logger.Printf("control socket: %v; ending the container", err)
			unix.Kill(-1, unix.SIGKILL)
			os.Exit(1)
		}
		switch m.Op {
		case opStart:
			s.start(m, files)
		case opSignal:
			closeAll(files)
			s.signal(m)
		default:
			closeAll(files)
			s.ctl.send(errorMsg(m.ID, errdefs.InvalidArgument(fmt.Errorf("unknown control operation %q", m.Op))))
		}
	}
}

func (s *initServer) signal(m *ctlMsg) {
	s.mu.Lock()
	pid := 0
	for p, id := range s.procs {
		if id == m.ID {
			pid = p
		}
	}
	s.mu.Unlock()
	if pid == 0 {
		return
	}
	if err := unix.Kill(pid, syscall.Signal(m.Sig)); err != nil && !errors.Is(err, unix.ESRCH) {
		s.logger.Printf("signal %d to %s (pid %d): %v", m.Sig, m.ID, pid, err)
	}
}

// start starts one process and answers opStarted or opError.
func (s *initServer) start(m *ctlMsg, files []*os.File) {
	defer closeAll(files)
	err := s.startProcess(m.ID, m.Proc, files)
	if err != nil {
		s.ctl.send(errorMsg(m.ID, err))
	}
}

// startProcess starts the process and sends opStarted. Both happen under
// s.mu, so that the reaper reports its exit only after that.
func (s *initServer) startProcess(id string, p *procSpec, files []*os.File) error {
	if p == nil || len(p.Args) == 0 {
		return errdefs.InvalidArgument(fmt.Errorf("start %s: no command", id))
	}
	if len(files) != 3 {
		return errdefs.InvalidArgument(fmt.Errorf("start %s: got %d stdio descriptors, want 3", id, len(files)))
	}
	u, err := resolveUser(p.User, user.PasswdPath, user.GroupPath, p.AdditionalGids)
	if err != nil {
		return err
	}
	if p.Tty && u.UID != 0 {
		// Let the user reopen its terminal by name, as runc does.
		unix.Fchown(int(files[0].Fd()), int(u.UID), -1)
	}
	env := processEnv(p.Env, u, p.Tty)
	path, err := lookPath(p.Args[0], envPath(env))
	if err != nil {
		return err
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if st, err := os.Stat(cwd); err != nil || !st.IsDir() {
		return errdefs.InvalidArgument(fmt.Errorf("start %s: working directory %q is not a directory in the container", id, cwd))
	}
	attr := &syscall.ProcAttr{
		Dir:   cwd,
		Env:   env,
		Files: []uintptr{files[0].Fd(), files[1].Fd(), files[2].Fd()},
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups},
			Setsid:     true,
			Setctty:    p.Tty,
			Ctty:       0,
		},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errdefs.Conflict(fmt.Errorf("start %s: the container is not running: its main process has exited", id))
	}
	restore, err := applyRlimits(p.Rlimits)
	if err != nil {
		return err
	}
	var pid int
	if p.Main {
		pid, err = spawnMain(path, p.Args, attr, p.Init)
	} else {
		pid, err = spawnInContainer(path, p.Args, attr)
	}
	restore()
	if err != nil {
		return fmt.Errorf("start %s: exec %q: %w", id, p.Args[0], err)
	}
	s.procs[pid] = id
	if p.Main {
		s.mainPid, s.mainID = pid, id
	}
	s.ctl.send(&ctlMsg{Op: opStarted, ID: id, Pid: pid})
	return nil
}

// processEnv completes env as Docker does: PATH, HOME and, with a tty,
// TERM when absent.
func processEnv(env []string, u user.Exec, tty bool) []string {
	has := func(k string) bool {
		for _, e := range env {
			if strings.HasPrefix(e, k+"=") {
				return true
			}
		}
		return false
	}
	out := append([]string(nil), env...)
	if !has("PATH") {
		out = append(out, "PATH="+defaultPath)
	}
	if !has("HOME") {
		out = append(out, "HOME="+u.Home)
	}
	if tty && !has("TERM") {
		out = append(out, "TERM=xterm")
	}
	return out
}

func envPath(env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			return v
		}
	}
	return defaultPath
}

// lookPath finds the executable file for name in path, the way the
// container's shell would. A missing binary is errdefs.ErrNotFound (the
// host reports exit 127, as Docker does); a path that names something not
// executable is errdefs.ErrPermissionDenied (exit 126).
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if err := isExecutable(name); err != nil {
			return "", fmt.Errorf("exec: %q: %w", name, err)
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if isExecutable(p) == nil {
			return p, nil
		}
	}
	return "", errdefs.NotFound(fmt.Errorf("exec: %q: executable file not found in $PATH", name))
}

// isExecutable reports, as a classified error, why p cannot be executed.
func isExecutable(p string) error {
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errdefs.NotFound(errors.New("no such file or directory"))
	case err != nil:
		return classifyExec(err)
	case st.IsDir():
		return errdefs.PermissionDenied(errors.New("is a directory"))
	case st.Mode()&0o111 == 0:
		return errdefs.PermissionDenied(errors.New("permission denied"))
	}
	return nil
}

// classifyExec gives a failed execve(2) its class, as runc and Docker
// read it: ENOENT (no such file, or no such interpreter) is not found
// (exit 127); EACCES, EPERM and EISDIR are permission denied (exit 126).
// Other errors keep no class.
func classifyExec(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return errdefs.NotFound(err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.EISDIR):
		return errdefs.PermissionDenied(err)
	}
	return err
}

var rlimitTypes = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU,
	"data": unix.RLIMIT_DATA, "fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS,
	"memlock": unix.RLIMIT_MEMLOCK, "msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE,
	"nofile": unix.RLIMIT_NOFILE, "nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS,
	"rtprio": unix.RLIMIT_RTPRIO, "rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING,
	"stack": unix.RLIMIT_STACK,
}

// applyRlimits sets rlimits on the init itself, so that the next fork
// inherits them (ForkExec has no per-child rlimits), and returns the
// function that puts the old ones back. The caller holds s.mu.
func applyRlimits(rls []rlimitReq) (func(), error) {
	var undo []func()
	restore := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	for _, r := range rls {
		res, ok := rlimitTypes[strings.TrimPrefix(strings.ToLower(r.Type), "rlimit_")]
		if !ok {
			restore()
			return nil, errdefs.InvalidArgument(fmt.Errorf("unknown rlimit type %q", r.Type))
		}
		var old unix.Rlimit
		if err := unix.Prlimit(0, res, &unix.Rlimit{Cur: r.Soft, Max: r.Hard}, &old); err != nil {
			restore()
			return nil, errdefs.InvalidArgument(fmt.Errorf("set rlimit %s=%d:%d: %w", r.Type, r.Soft, r.Hard, err))
		}
		undo = append(undo, func() { unix.Prlimit(0, res, &old, nil) })
	}
	return restore, nil
}
