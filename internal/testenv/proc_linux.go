package testenv

import "syscall"

// dieWithParent makes a child process die with the test binary, even
// when that is killed, so that no registry outlives a test run.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
