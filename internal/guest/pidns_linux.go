package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The container's processes live in a PID namespace of their own, nested
// in the container init's, so that the main process is PID 1 there and
// `ps aux` in the container shows the container's processes only — not
// the init, which stays one level up, in the same mount, UTS and IPC
// namespaces, where it reaps the processes it started and reports their
// exits. Orphans inside the container are the main process's to reap, as
// with Docker (without --init). Signals from the host reach the main
// process the way they reach a PID 1: SIGKILL always, others only when it
// handles them, so `stop` of a shell that ignores SIGTERM ends in SIGKILL
// after the timeout, as with Docker.
//
// The main process starts as a re-execution of this program (argv[0]
// "berth-main"), PID 1 of the new namespace, which mounts a fresh /proc
// (so /proc shows the new namespace), drops to the process's user and
// executes the command. Exec'd processes join the namespace with setns(2)
// on a thread of their own before the fork (a PID namespace, unlike a
// mount namespace, can be joined by a multi-threaded process: it applies
// to the children of the calling thread).

// mainStageArg0 is argv[0] of the main process before it executes the
// container's command.
const mainStageArg0 = "berth-main"

// stageExe is where the container init reaches the main process's
// stage executable after pivot_root: a bind mount in the container's
// private /dev tmpfs (outside the image's files), removed once the main
// process runs. (The init's own binary is on a mount pivot_root
// detached, out of reach by path.)
const stageExe = "/dev/.berth-main"

// exposeStage bind-mounts exe (default: this program) at stageExe inside
// root.
func exposeStage(root, exe string) error {
	if exe == "" {
		// By path: /proc/self/exe names the mount of guestinit's
		// namespace, which cannot be bound from this copy of it.
		var err error
		if exe, err = os.Readlink("/proc/self/exe"); err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
	}
	dev, err := resolveInRoot(root, filepath.Dir(stageExe)[1:])
	if err != nil {
		return fmt.Errorf("prepare %s: %w", stageExe, err)
	}
	target := filepath.Join(dev, filepath.Base(stageExe))
	f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o500)
	if err != nil {
		return fmt.Errorf("prepare %s: %w", stageExe, err)
	}
	f.Close()
	if err := unix.Mount(exe, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", exe, stageExe, err)
	}
	return nil
}

// hideStage removes stageExe once the main process has started.
func hideStage() {
	unix.Unmount(stageExe, unix.MNT_DETACH)
	os.Remove(stageExe)
}

// mainStageErrFd is the descriptor the main stage reports a failure on
// (an opError ctlMsg in JSON: message and class); it is close-on-exec,
// so EOF means the command is running.
const mainStageErrFd = 3

// spawnMain starts the container's main process as PID 1 of a new PID
// namespace (behind a reaping init with withInit) and returns its pid in
// the init's namespace.
func spawnMain(path string, args []string, attr *syscall.ProcAttr, withInit bool) (int, error) {
	errR, errW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer errR.Close()
	sys := *attr.Sys
	sys.Cloneflags |= unix.CLONE_NEWPID
	cred := sys.Credential
	sys.Credential = nil // the stage mounts /proc as root, then drops
	stage := *attr
	stage.Sys = &sys
	stage.Files = append(append([]uintptr{}, attr.Files...), errW.Fd())
	argv := []string{mainStageArg0, path}
	if cred != nil {
		argv = append(argv, strconv.Itoa(int(cred.Uid)), strconv.Itoa(int(cred.Gid)), joinIDs(cred.Groups))
	} else {
		argv = append(argv, "0", "0", "")
	}
	initFlag := "0"
	if withInit {
		initFlag = "1"
	}
	argv = append(append(argv, initFlag, "--"), args...)
	pid, err := syscall.ForkExec(stageExe, argv, &stage)
	errW.Close()
	hideStage()
	if err != nil {
		return 0, fmt.Errorf("start the main process's stage %s: %w", stageExe, err)
	}
	msg, _ := io.ReadAll(errR)
	if len(msg) > 0 {
		// The stage exits; the reaper collects it without a report.
		var m ctlMsg
		if err := json.Unmarshal(msg, &m); err != nil {
			return 0, fmt.Errorf("main process stage: unreadable failure report %q", msg)
		}
		return 0, m.err()
	}
	return pid, nil
}

// spawnInContainer starts an exec'd process in the main process's PID
// namespace: on a thread of its own (which dies with the goroutine, its
// namespace for children changed), it joins the namespace of /proc/1 —
// the main process, since /proc now shows the container's namespace —
// and forks.
func spawnInContainer(path string, args []string, attr *syscall.ProcAttr) (int, error) {
	type result struct {
		pid int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		fd, err := unix.Open("/proc/1/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: fmt.Errorf("open the container's PID namespace: %w", err)}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWPID); err != nil {
			ch <- result{err: fmt.Errorf("join the container's PID namespace: %w", err)}
			return
		}
		pid, err := syscall.ForkExec(path, args, attr)
		ch <- result{pid, classifyExec(err)}
	}()
	r := <-ch
	return r.pid, r.err
}

// runMainStage is the main process before its command: argv is
// [berth-main, path, uid, gid, groups, init, --, args...]. It mounts the
// namespace's /proc, then either becomes the command (drops to the user
// and executes it) or, with init "1", stays as the namespace's init: it
// starts the command as the user, reaps every orphan and forwards the
// signals it gets, and exits with the command's status. It never returns.
func runMainStage() {
	errf := os.NewFile(mainStageErrFd, "stage-errors")
	fail := func(err error) {
		json.NewEncoder(errf).Encode(errorMsg("", err))
		os.Exit(127)
	}
	a := os.Args
	if len(a) < 8 || a[6] != "--" {
		fail(fmt.Errorf("%s: malformed arguments %q", mainStageArg0, a))
	}
	unix.CloseOnExec(mainStageErrFd)
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		fail(fmt.Errorf("mount /proc for the container: %w", err))
	}
	uid, err1 := strconv.Atoi(a[2])
	gid, err2 := strconv.Atoi(a[3])
	groups, err3 := splitIDs(a[4])
	if err := errors.Join(err1, err2, err3); err != nil {
		fail(fmt.Errorf("%s: bad user: %w", mainStageArg0, err))
	}
	path, args := a[1], a[7:]
	if a[5] == "1" {
		os.Exit(reapingInit(path, args, uid, gid, groups, fail))
	}
	if err := syscall.Setgroups(groups); err != nil {
		fail(fmt.Errorf("set groups %v: %w", groups, err))
	}
	if err := syscall.Setgid(gid); err != nil {
		fail(fmt.Errorf("set gid %d: %w", gid, err))
	}
	if err := syscall.Setuid(uid); err != nil {
		fail(fmt.Errorf("set uid %d: %w", uid, err))
	}
	err := syscall.Exec(path, args, os.Environ())
	fail(classifyExec(fmt.Errorf("exec %q: %w", path, err)))
}

// reapingInit is the container's PID 1 with --init: it starts the
// command, reaps everything, forwards signals, and returns the command's
// exit code (128+n after signal n).
func reapingInit(path string, args []string, uid, gid int, groups []int, fail func(error)) int {
	os.WriteFile("/proc/self/comm", []byte(containerInitArg0), 0)
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	gids := make([]uint32, len(groups))
	for i, g := range groups {
		gids[i] = uint32(g)
	}
	sys := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: gids}}
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		// A terminal: the command gets its own process group in the
		// foreground, so the shell has job control.
		sys.Setpgid, sys.Foreground, sys.Ctty = true, true, 0
	}
	child, err := syscall.ForkExec(path, args, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}, Sys: sys})
	if err != nil {
		fail(classifyExec(fmt.Errorf("exec %q: %w", path, err)))
	}
	unix.Close(mainStageErrFd) // started: EOF tells the container init
	for sig := range sigs {
		ss, ok := sig.(syscall.Signal)
		if !ok {
			continue
		}
		switch ss {
		case unix.SIGCHLD:
			code := 0
			if stopped, _ := reapExited(func(pid int, ws unix.WaitStatus) bool {
				if pid != child {
					return false
				}
				code, _ = exitCode(ws)
				return true
			}); stopped {
				return code
			}
		case unix.SIGURG, unix.SIGPIPE:
		default:
			unix.Kill(child, ss)
		}
	}
	return 0
}

func joinIDs(ids []uint32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(s, ",")
}

func splitIDs(s string) ([]int, error) {
	if s == "" {
		return []int{}, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}
