//go:build darwin && cgo

package menubar

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/kernel"
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
		var stopping atomic.Bool // set by quit: the status item is quit's
		go func() {
			d, err := daemon.Start(ctx, daemon.Config{Home: h})
			if err != nil {
				dispatch.MainQueue().DispatchAsync(func() {
					status.SetTitle(fmt.Sprintf("Berth could not start: %v", err))
				})
			} else {
				// The guest kernel is made ready now (on the first run
				// downloaded), its progress in the menu ("Setting up
				// Berth… 43 %"), then "Berth is running".
				d.PrepareKernel()
				go showSetup(d, status, &stopping)
			}
			started <- d // nil when the start failed
		}()
		// Quitting, from the menu or by SIGTERM/SIGINT (kill, launchctl,
		// Ctrl-C in a terminal), shuts the engine down first, once: its
		// socket is removed and its VMs are stopped.
		var quitOnce sync.Once
		quit := func() {
			quitOnce.Do(func() {
				stopping.Store(true)
				dispatch.MainQueue().DispatchAsync(func() { status.SetTitle("Stopping Berth…") })
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
			})
		}
		menu.AddItem(appkit.NewMenuItemWithAction("Quit Berth", "q", func(objc.Object) { quit() }))
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		go func() {
			<-sigs
			quit()
		}()
		item.SetMenu(menu)
	})
	return nil
}

// showSetup mirrors the engine's kernel preparation in the status item
// until the app is stopping; a failure's full text, with what to do, is
// the item's tooltip.
func showSetup(d *daemon.Daemon, status appkit.MenuItem, stopping *atomic.Bool) {
	last := ""
	for !stopping.Load() {
		st := d.KernelSetup()
		title, tip := st.String(), ""
		switch st.Phase {
		case kernel.SetupReady:
			title = "Berth is running"
		case kernel.SetupFailed:
			title, tip = "Berth has no usable Linux kernel (details: hover)", st.String()
			if errors.Is(st.Err, kernel.ErrFetch) {
				title = "Berth could not download its Linux kernel (details: hover)"
			}
		}
		if title != last {
			last = title
			dispatch.MainQueue().DispatchAsync(func() {
				if stopping.Load() {
					return
				}
				status.SetTitle(title)
				status.SetToolTip(tip)
			})
		}
		// A container start retries a failed download, and may show
		// progress again: keep watching, closely while it moves.
		if st.Phase == kernel.SetupDownloading || st.Phase == kernel.SetupUnpacking {
			time.Sleep(250 * time.Millisecond)
		} else {
			time.Sleep(2 * time.Second)
		}
	}
}
