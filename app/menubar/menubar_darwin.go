//go:build darwin && cgo

package menubar

import (
	"context"
	"fmt"
	"time"

	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/home"
	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/objc"
)

// Run puts Berth's item in the menu bar, starts the engine in-process on h
// off the main thread, and runs the Cocoa event loop until the user quits;
// then it shuts the engine down. It must be called from main, on the main
// OS thread (package main locks it in init): Cocoa runs only there, so
// every UI change below is made on the main queue.
func Run(h home.Home) error {
	ctx := context.Background()
	macos.RunApp(func(app appkit.Application, _ *appkit.ApplicationDelegate) {
		app.SetActivationPolicy(appkit.ApplicationActivationPolicyAccessory)
		item := appkit.StatusBar_SystemStatusBar().StatusItemWithLength(appkit.VariableStatusItemLength)
		objc.Retain(&item)
		item.Button().SetTitle("Berth")
		menu := appkit.NewMenuWithTitle("Berth")
		status := appkit.NewMenuItemWithSelector("Starting Berth…", "", objc.Selector{})
		status.SetEnabled(false)
		menu.AddItem(status)
		menu.AddItem(appkit.MenuItem_SeparatorItem())

		// The engine starts on its own goroutine: a start that takes
		// seconds (first run, a kernel to verify) never blocks the event
		// loop.
		started := make(chan *daemon.Daemon, 1)
		go func() {
			d, err := daemon.Start(ctx, daemon.Config{Home: h})
			dispatch.MainQueue().DispatchAsync(func() {
				if err != nil {
					status.SetTitle(fmt.Sprintf("Berth could not start: %v", err))
					return
				}
				status.SetTitle("Berth is running")
			})
			started <- d // nil when the start failed
		}()
		menu.AddItem(appkit.NewMenuItemWithAction("Quit Berth", "q", func(objc.Object) {
			status.SetTitle("Stopping Berth…")
			go func() {
				if d := <-started; d != nil {
					sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					if err := d.Shutdown(sctx); err != nil {
						d.Logger().Error("shutdown", "err", err)
					}
				}
				dispatch.MainQueue().DispatchAsync(func() { app.Terminate(nil) })
			}()
		}))
		item.SetMenu(menu)
	})
	return nil
}
