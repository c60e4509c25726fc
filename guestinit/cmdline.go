package main

import (
	"fmt"
	"strconv"
	"strings"
)

// bootConfig is guestinit's part of the kernel command line.
type bootConfig struct {
	// Root is the rootfs block device (berth.root=/dev/vda); empty means
	// no rootfs disk (the agent then roots containers at rootDir, an
	// empty tmpfs directory).
	Root string
	// RootFSType is its filesystem (berth.rootfstype=ext4).
	RootFSType string
	// RootFlags are mount options (berth.rootflags=noatime,...).
	RootFlags string
	// Transport is "vsock" or "serial" (berth.transport=).
	Transport string
	// SerialPort names the virtio-serial port (berth.serialport=).
	SerialPort string
	// Debug logs every agent call (berth.debug=1).
	Debug bool
	// Template boots a template to be saved and restored
	// (berth.template=1): the agent serves before the root disk is
	// mounted, and the agent's FinishRestore mounts it.
	Template bool
}

// parseCmdline reads the berth.* parameters of a kernel command line.
// Unknown berth.* parameters are errors, so typos are seen at once.
func parseCmdline(cmdline string) (bootConfig, error) {
	c := bootConfig{RootFSType: "ext4", Transport: "vsock", SerialPort: "berth.agent"}
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		if !strings.HasPrefix(k, "berth.") {
			continue
		}
		switch k {
		case "berth.root":
			c.Root = v
		case "berth.rootfstype":
			c.RootFSType = v
		case "berth.rootflags":
			c.RootFlags = v
		case "berth.transport":
			if v != "vsock" && v != "serial" {
				return c, fmt.Errorf("kernel command line: berth.transport=%q: want vsock or serial", v)
			}
			c.Transport = v
		case "berth.serialport":
			c.SerialPort = v
		case "berth.debug":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("kernel command line: berth.debug=%q: %w", v, err)
			}
			c.Debug = b
		case "berth.template":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("kernel command line: berth.template=%q: %w", v, err)
			}
			c.Template = b
		default:
			return c, fmt.Errorf("kernel command line: unknown parameter %s", k)
		}
	}
	if c.Root != "" && !strings.HasPrefix(c.Root, "/dev/") {
		return c, fmt.Errorf("kernel command line: berth.root=%q: want a device path under /dev", c.Root)
	}
	return c, nil
}
