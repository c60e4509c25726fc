//go:build !darwin

package main

// runApp reports that there is no menu-bar app on this OS, so a bare
// `berth` prints the CLI's help.
func runApp() bool { return false }
