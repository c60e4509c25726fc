package container

import (
	"bytes"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"
)

// reapOrphan kills the VM process a dead engine left running for the
// container in dir: pid, if it is still alive and its command line names
// the container's directory (so a recycled pid is never killed).
func reapOrphan(pid int, dir string, log *slog.Logger) {
	if pid <= 0 {
		return
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
		return
	}
	log.Warn("stopping the VM a previous engine left running", "pid", pid, "dir", dir)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50; i++ {
		if err := syscall.Kill(pid, 0); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
