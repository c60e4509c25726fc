//go:build darwin && cgo

package menubar

import (
	"context"
	"fmt"
	"time"

	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/home"
	"github.com/progrium/darwinkit/macos"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/objc"
)

// Run starts the engine in-process on h, puts Berth's item in the menu
// bar ("Berth is running", Quit) and runs the Cocoa event loop until the
// user quits; then it shuts the engine down. It must be called from main.
func Run(h home.Home) error {
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Config{Home: h})
	if err != nil {
		return fmt.Errorf("start Berth engine: %w", err)
	}
	macos.RunApp(func(app appkit.Application, _ *appkit.ApplicationDelegate) {
		app.SetActivationPolicy(appkit.ApplicationActivationPolicyAccessory)
		item := appkit.StatusBar_SystemStatusBar().StatusItemWithLength(appkit.VariableStatusItemLength)
		objc.Retain(&item)
		item.Button().SetTitle("Berth")
		menu := appkit.NewMenuWithTitle("Berth")
		status := appkit.NewMenuItemWithSelector("Berth is running", "", objc.Selector{})
		status.SetEnabled(false)
		menu.AddItem(status)
		menu.AddItem(appkit.MenuItem_SeparatorItem())
		menu.AddItem(appkit.NewMenuItemWithAction("Quit Berth", "q", func(objc.Object) {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := d.Shutdown(sctx); err != nil {
				d.Logger().Error("shutdown", "err", err)
			}
			app.Terminate(nil)
		}))
		item.SetMenu(menu)
	})
	return nil
}
