//go:build unix

package plugin

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// checkOwner refuses a file or directory owned by someone other than
// this user or root.
func checkOwner(fi os.FileInfo, path string) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	if uid := int(st.Uid); uid != 0 && uid != os.Getuid() {
		return fmt.Sprintf("%s is owned by another user (uid %d), not you or root", path, uid)
	}
	return ""
}

// ownGroup runs cmd in its own process group and, when its context
// ends, kills the whole group: a metadata query that timed out leaves
// no children behind.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
