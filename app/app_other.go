//go:build !darwin || !cgo

package main

// runApp reports that there is no menu-bar app in this build (not macOS,
// or macOS without cgo: a CLI-only binary), so a bare `berth` prints the
// CLI's help.
func runApp() bool { return false }
