//go:build darwin && cgo

package main

import (
	"fmt"
	"os"

	"github.com/berthvm/berth/app/menubar"
	"github.com/berthvm/berth/engine/home"
)

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
