//go:build linux

// guestinit is PID 1 of every Berth micro-VM: the only program in the
// initramfs. It prepares the machine, then serves the agent API through
// which the host runs the container's processes. See docs/agent.md.
//
// Build it static: CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'.
package main

import (
	"fmt"
	"os"

	"github.com/berthvm/berth/internal/guest"
)

// version is set at build time with -ldflags '-X main.version=...'.
var version = "dev"

func main() {
	// A re-execution of this binary as a container's init.
	guest.RunIfContainerInit()
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "guestinit: must run as PID 1 of a Berth VM (the container init runs as argv[0] berth-init)")
		os.Exit(2)
	}
	Boot()
}
