// Package linuxonly is a darwincheck fixture: an untagged file that uses a
// Linux-only field, which breaks the macOS build.
package linuxonly

import "syscall"

// Attr sets a parent-death signal, which only Linux has.
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
