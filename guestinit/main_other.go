//go:build !linux

// guestinit runs only inside Linux guests.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "guestinit runs only as PID 1 of a Linux guest")
	os.Exit(2)
}
