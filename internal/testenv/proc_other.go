//go:build !linux

package testenv

import "syscall"

// dieWithParent has no portable equivalent of Linux's Pdeathsig; the
// test's cleanup kills the child.
func dieWithParent() *syscall.SysProcAttr { return nil }
