//go:build darwin && cgo

package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/berthvm/berth/app/menubar"
	"github.com/berthvm/berth/engine/home"
)

// Cocoa must run on the process's main thread. main runs on it only until
// the scheduler moves it, so the main goroutine is wired to the main OS
// thread before main starts; darwinkit's RunApp locking it when called is
// too late if anything ran before.
func init() { runtime.LockOSThread() }

// runApp runs the menu-bar app, which hosts the engine; it returns when
// the user quits.
func runApp() bool {
	h, err := home.Resolve("")
	if err == nil {
		err = menubar.Run(h)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth: %v\n", err)
		os.Exit(1)
	}
	return true
}
