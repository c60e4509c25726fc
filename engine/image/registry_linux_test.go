package image

import "syscall"

// The registry dies with the test binary, even when that is killed.
func init() { registryProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
