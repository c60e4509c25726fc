package container

import "golang.org/x/sys/unix"

// physicalMemory is the machine's RAM, from the hw.memsize sysctl.
func physicalMemory() (uint64, error) {
	return unix.SysctlUint64("hw.memsize")
}
