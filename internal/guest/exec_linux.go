package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/user"
)

// How a container init turns a process request into an execve(2): user,
// environment, executable, working directory, rlimits, and the class of
// a failure.

// defaultPath is PATH when the process's environment sets none (Docker's).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// prepareExec resolves what process p runs as — its user (in the
// container's /etc/passwd and /etc/group), environment, executable (in
// its PATH) and working directory — and returns the executable's path
// and the attributes to start it with on stdio files.
func prepareExec(id string, p *procSpec, files []*os.File) (string, *syscall.ProcAttr, error) {
	if p == nil || len(p.Args) == 0 {
		return "", nil, errdefs.InvalidArgument(fmt.Errorf("start %s: no command", id))
	}
	if len(files) != 3 {
		return "", nil, errdefs.InvalidArgument(fmt.Errorf("start %s: got %d stdio descriptors, want 3", id, len(files)))
	}
	u, err := resolveUser(p.User, user.PasswdPath, user.GroupPath, p.AdditionalGids)
	if err != nil {
		return "", nil, err
	}
	if p.Tty && u.UID != 0 {
		// Let the user reopen its terminal by name, as runc does.
		unix.Fchown(int(files[0].Fd()), int(u.UID), -1)
	}
	env := processEnv(p.Env, u, p.Tty)
	path, err := lookPath(p.Args[0], envPath(env))
	if err != nil {
		return "", nil, err
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if st, err := os.Stat(cwd); err != nil || !st.IsDir() {
		return "", nil, errdefs.InvalidArgument(fmt.Errorf("start %s: working directory %q is not a directory in the container", id, cwd))
	}
	return path, &syscall.ProcAttr{
		Dir:   cwd,
		Env:   env,
		Files: []uintptr{files[0].Fd(), files[1].Fd(), files[2].Fd()},
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups},
			Setsid:     true,
			Setctty:    p.Tty,
			Ctty:       0,
		},
	}, nil
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
