//go:build darwin && cgo

package menubar

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/berthvm/berth/app/appwindow"
	"github.com/berthvm/berth/app/cli"
	"github.com/berthvm/berth/app/drop"
	"github.com/berthvm/berth/app/menu"
	"github.com/berthvm/berth/app/settings"
	"github.com/berthvm/berth/app/termwindow"
	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/webui"
	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"
)

// Run puts Berth's item in the menu bar, starts the engine in-process on h
// off the main thread, and runs the Cocoa event loop until the user quits;
// then it shuts the engine down. It must be called from main, on the main
// OS thread (package main locks it in init): Cocoa runs only there, so
// every UI change below is made on the main queue.
//
// The menu is app/menu's model: rebuilt from the State's Snapshot when it
// opens (menuNeedsUpdate:) and whenever the State changes (so an open
// menu follows the engine); each item's action runs Dispatcher.Do on a
// goroutine, after its confirmation or dialog (NSAlert), and the Result's
// Effects are done on the main queue.
func Run(h home.Home) error {
	cl, err := client.New(h.Socket())
	if err != nil {
		return fmt.Errorf("menu bar: engine client for %s: %w", h.Socket(), err)
	}
	exe, err := os.Executable()
	if err != nil {
		exe = "berth"
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	state := menu.NewState(cl, menu.WithLogPath(h.LogFile()), menu.WithPlugins(menu.PluginEntries(cli.PluginConfig(h.Dir))))
	login := settings.NewLaunchAtLogin(settings.NewStore(h), appLoginItem{})
	b := &bar{
		ctx: ctx, cancel: cancel, home: h, state: state, login: login,
		disp:    menu.NewDispatcher(cl, state, menu.WithCLI(exe, h.Dir), menu.WithLaunchAtLogin(login)),
		started: make(chan *daemon.Daemon, 1),
	}
	macos.RunApp(func(app appkit.Application, _ *appkit.ApplicationDelegate) {
		b.app = app
		b.setUp()
	})
	cl.Close()
	return nil
}

// bar is the running menu-bar app. Its Cocoa fields are used on the main
// queue only.
type bar struct {
	ctx    context.Context
	cancel context.CancelFunc
	home   home.Home
	state  *menu.State
	disp   *menu.Dispatcher
	login  *settings.LaunchAtLogin
	// started receives the hosted daemon once (nil when it did not
	// start); quit waits on it.
	started chan *daemon.Daemon
	daemon  *daemon.Daemon // set on the main queue once started

	app      appkit.Application
	item     appkit.StatusItem
	menu     appkit.Menu
	delegate *appkit.MenuDelegate
	icon     Icon
	// berthWindow is the one Berth window (Open Berth Window).
	berthWindow appwindow.Window

	quitOnce sync.Once
}

// setUp runs on the main thread inside RunApp: the status item with its
// menu and delegate, the engine's start, and the goroutines that follow
// the State.
func (b *bar) setUp() {
	b.app.SetActivationPolicy(appkit.ApplicationActivationPolicyAccessory)
	b.item = appkit.StatusBar_SystemStatusBar().StatusItemWithLength(appkit.VariableStatusItemLength)
	objc.Retain(&b.item)
	b.menu = appkit.NewMenuWithTitle("Berth")
	objc.Retain(&b.menu)
	b.menu.SetAutoenablesItems(false)
	b.delegate = &appkit.MenuDelegate{}
	b.delegate.SetMenuNeedsUpdate(func(appkit.Menu) { b.rebuild() })
	b.menu.SetDelegate(b.delegate)
	b.item.SetMenu(b.menu)
	b.state.EngineStarting()
	b.rebuild()
	b.setUpStatusDrop()

	go b.reconcileLaunchAtLogin()
	go b.startEngine()
	go b.follow()
	// SIGTERM/SIGINT (kill, launchctl, Ctrl-C in a terminal) quit at
	// once, as Quit Now does.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-sigs:
			b.quit()
		case <-b.ctx.Done():
		}
	}()
}

// startEngine starts the hosted daemon off the main thread. A second
// Berth on the same home says so and exits; any other failure is shown
// in the menu ("Berth is not running: …" with Open Log).
func (b *bar) startEngine() {
	// Plugins found as the CLI (and the menu's Plugins section) finds
	// them: berth's built-in commands win.
	d, err := daemon.Start(b.ctx, daemon.Config{Home: b.home, Plugins: daemon.PluginOptions{Discovery: cli.PluginConfig(b.home.Dir)}})
	if err != nil {
		b.started <- nil
		if title, msg, ok := AlreadyRunning(err); ok {
			dispatch.MainQueue().DispatchAsync(func() {
				b.alert(title, msg, appkit.AlertStyleWarning)
				b.app.Terminate(nil)
			})
			return
		}
		b.state.EngineFailed(err)
		return
	}
	dispatch.MainQueue().DispatchAsync(func() { b.daemon = d })
	b.started <- d
	d.PrepareKernel()
	go b.watchKernelSetup(d)
	if err := b.state.Run(b.ctx); err != nil && !errors.Is(err, context.Canceled) {
		d.Logger().Error("menu state", "err", err)
	}
}

// reconcileLaunchAtLogin brings the Launch at Login choice and the
// system's login item together (settings.LaunchAtLogin.Reconcile) and
// shows the outcome in the menu; a failure is logged to stderr (the
// engine's log is not open yet) and the item shows the system's word.
func (b *bar) reconcileLaunchAtLogin() {
	st, err := b.login.Reconcile()
	b.state.SetLaunchAtLogin(st)
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth: %v\n", err)
	}
}

// watchKernelSetup reports the engine's kernel preparation into the State
// (a download's progress in the menu) until it is ready or the app
// quits. The engine has no event for it: while it moves it is read four
// times a second, otherwise every two seconds (a container start retries
// a failed download).
func (b *bar) watchKernelSetup(d *daemon.Daemon) {
	for {
		st := d.KernelSetup()
		b.state.KernelSetup(st)
		if st.Phase == kernel.SetupReady {
			return
		}
		wait := 2 * time.Second
		if st.Phase == kernel.SetupDownloading || st.Phase == kernel.SetupUnpacking {
			wait = 250 * time.Millisecond
		}
		select {
		case <-b.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// follow rebuilds the menu and the icon when the State changes and posts
// its notices as user notifications, until the app quits.
func (b *bar) follow() {
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.state.Changed():
			dispatch.MainQueue().DispatchAsync(b.rebuild)
		case n := <-b.state.Notices():
			dispatch.MainQueue().DispatchAsync(func() { notify(n) })
		}
	}
}

// rebuild redraws the menu and the status icon from the State (main
// queue).
func (b *bar) rebuild() {
	snap := b.state.Snapshot()
	b.setIcon(IconFor(snap))
	b.menu.RemoveAllItems()
	for _, it := range menu.Build(snap, time.Now()).Items {
		b.menu.AddItem(b.menuItem(it))
	}
}

// setIcon shows icon, a template image from the bundle's Resources
// (berthTemplate.png and @2x; AppKit picks the scale), or the title
// "Berth" when the image is missing (a binary run outside Berth.app).
func (b *bar) setIcon(icon Icon) {
	if icon == b.icon {
		return
	}
	b.icon = icon
	img := appkit.Image_ImageNamed(appkit.ImageName(icon))
	if img.IsNil() {
		b.item.Button().SetTitle("Berth")
		return
	}
	img.SetTemplate(true)
	img.SetSize(foundation.Size{Width: 18, Height: 18})
	b.item.Button().SetTitle("")
	b.item.Button().SetImage(img)
}

// menuItem is it as an NSMenuItem, its submenu included.
func (b *bar) menuItem(it menu.Item) appkit.MenuItem {
	if it.Separator {
		return appkit.MenuItem_SeparatorItem()
	}
	var mi appkit.MenuItem
	if it.Enabled && it.Action.Kind != menu.None && len(it.Submenu) == 0 {
		mi = appkit.NewMenuItemWithAction(it.Title, it.Shortcut.Key, func(objc.Object) { b.choose(it) })
	} else {
		mi = appkit.NewMenuItemWithSelector(it.Title, it.Shortcut.Key, objc.Selector{})
	}
	if it.Shortcut.Key != "" {
		mi.SetKeyEquivalentModifierMask(modifiers(it.Shortcut.Modifiers))
	}
	// A header is a disabled title line, as a section title.
	mi.SetEnabled(it.Enabled && !it.Header)
	switch it.State {
	case menu.On:
		mi.SetState(appkit.ControlStateValueOn)
	case menu.Mixed:
		mi.SetState(appkit.ControlStateValueMixed)
	}
	if it.Tooltip != "" {
		mi.SetToolTip(it.Tooltip)
	}
	if len(it.Submenu) > 0 {
		sub := appkit.NewMenuWithTitle(it.Title)
		sub.SetAutoenablesItems(false)
		for _, s := range it.Submenu {
			sub.AddItem(b.menuItem(s))
		}
		mi.SetSubmenu(sub)
	}
	return mi
}

// modifiers is m as AppKit's modifier flags.
func modifiers(m menu.Modifier) appkit.EventModifierFlags {
	var f appkit.EventModifierFlags
	if m&menu.Command != 0 {
		f |= appkit.EventModifierFlagCommand
	}
	if m&menu.Shift != 0 {
		f |= appkit.EventModifierFlagShift
	}
	if m&menu.Option != 0 {
		f |= appkit.EventModifierFlagOption
	}
	return f
}

// choose is an item's action (main queue): its confirmation and dialog
// first (modal NSAlerts), then Dispatcher.Do on a goroutine; the Result's
// Effects, or the error, come back on the main queue.
func (b *bar) choose(it menu.Item) {
	a := it.Action
	if c, ok := ConfirmationFor(it); ok {
		if a, ok = c.Choose(b.confirm(c)); !ok {
			return
		}
	}
	if d, ok := a.Dialog(); ok {
		var texts []string
		if d.ChooseFolder {
			path, ok := b.chooseFolder(d)
			if !ok {
				return
			}
			texts = []string{path}
		} else if texts, ok = b.dialog(d); !ok {
			return
		}
		var err error
		if a, err = DialogInput(a, d, texts); err != nil {
			title, msg := ErrorAlert(it, err)
			b.alert(title, msg, appkit.AlertStyleWarning)
			return
		}
	}
	b.perform(it, a)
}

// perform runs a (it's action, confirmed and with its input) through
// Dispatcher.Do on a goroutine; the Result's Effects, or the error as an
// alert titled after it, come back on the main queue.
func (b *bar) perform(it menu.Item, a menu.Action) {
	go func() {
		res, err := b.disp.Do(b.ctx, a)
		dispatch.MainQueue().DispatchAsync(func() {
			if err != nil && !res.Quit {
				title, msg := ErrorAlert(it, err)
				b.alert(title, msg, appkit.AlertStyleWarning)
				return
			}
			for _, e := range Effects(res) {
				b.do(e)
			}
		})
	}()
}

// do performs one Effect (main queue).
func (b *bar) do(e Effect) {
	switch e.Kind {
	case OpenTerminalWindow:
		if b.daemon == nil {
			b.alert("Open Shell failed", "Berth's engine is not running.", appkit.AlertStyleWarning)
			return
		}
		t, err := TicketFromURL(b.daemon.Terminals(), e.Text)
		if err != nil {
			b.alert("Open Shell failed", err.Error(), appkit.AlertStyleWarning)
			return
		}
		container := t.Options.Container
		termwindow.Open(b.ctx, b.daemon.Terminals(), t, func(paths []string) { b.dropOnContainer(container, paths) })
	case CopyText:
		pb := appkit.Pasteboard_GeneralPasteboard()
		pb.ClearContents()
		pb.SetStringForType(e.Text, appkit.PasteboardTypeString)
	case RunInTerminalApp:
		// A .command file opened with `open -a Terminal`: Terminal.app
		// runs it in a new window, with no Automation permission (which
		// an AppleScript "do script" would need).
		go func() {
			script, err := WriteTerminalScript(os.TempDir(), e.Text)
			if err == nil {
				args := TerminalAppArgs(script)
				if out, rerr := exec.CommandContext(b.ctx, args[0], args[1:]...).CombinedOutput(); rerr != nil {
					os.Remove(script)
					err = fmt.Errorf("open in Terminal: %v: %w: %s", args, rerr, out)
				}
			}
			if err != nil {
				dispatch.MainQueue().DispatchAsync(func() { b.alert("Open in Terminal failed", err.Error(), appkit.AlertStyleWarning) })
			}
		}()
	case OpenFile:
		appkit.Workspace_SharedWorkspace().OpenURL(foundation.URL_FileURLWithPath(e.Text))
	case ShowWindow:
		// Settings… is the Berth window's Settings view.
		view := ""
		switch menu.Window(e.Text) {
		case menu.BerthWindow:
		case menu.SettingsWindow:
			view = "settings"
		default:
			b.alert("Open "+e.Text+" failed", "Berth has no "+e.Text+" window.", appkit.AlertStyleWarning)
			return
		}
		if b.daemon == nil {
			b.alert("Open Berth Window failed", "Berth's engine is not running.", appkit.AlertStyleWarning)
			return
		}
		b.berthWindow.Log = b.daemon.Logger()
		b.berthWindow.OpenView(b.ctx, webui.EmbeddedWindow(b.daemon.APIHandler(), nil), appwindow.Hooks{
			OpenShell:        b.openShell,
			Drop:             b.dropOnBerthWindow,
			LaunchAtLogin:    b.login.State,
			SetLaunchAtLogin: b.setLaunchAtLogin,
			RunPlugin:        b.runPluginEntry,
		}, view)
	case ShowMessage:
		b.item.Button().SetToolTip(e.Text)
	case QuitApp:
		b.quit()
	}
}

// setLaunchAtLogin is the Berth window's Launch at Login toggle: the
// menu's item shows the state after, as when it is chosen there.
func (b *bar) setLaunchAtLogin(on bool) (settings.LoginState, error) {
	st, err := b.login.Set(on)
	b.state.SetLaunchAtLogin(st)
	return st, err
}

// openShell is the Berth window's Shell for a container (main queue):
// what the menu's Open Shell does (an OpenShell action, whose Effect
// opens the terminal window).
func (b *bar) openShell(containerID string) {
	a := menu.Action{Kind: menu.OpenShell, Container: containerID}
	if c, ok := drop.Find(b.state.Snapshot(), containerID); ok {
		a.Container, a.Name = c.ID, c.Name
	}
	b.perform(menu.Item{Title: "Open Shell", Action: a}, a)
}

// runPluginEntry is the Berth window's palette entry for a plugin's menu
// entry (main queue): what choosing the menu's item does, for an entry
// the menu has (menu.FindEntry), else an error the window logs.
func (b *bar) runPluginEntry(name string, args []string) error {
	e, ok := menu.FindEntry(b.state.Snapshot().Plugins, name, args)
	if !ok {
		return fmt.Errorf("no menu entry of plugin %s runs it with %q", name, args)
	}
	a := menu.Action{Kind: menu.RunPlugin, Plugin: e.Plugin, PluginArgs: e.Args}
	b.perform(menu.Item{Title: e.Title, Action: a}, a)
	return nil
}

// dropOnBerthWindow shares Finder items dropped on the Berth window
// (main queue): with the container whose row they were dropped on, as a
// drop on its terminal window does; dropped elsewhere in the window, the
// status item's question (which container?) is asked first.
func (b *bar) dropOnBerthWindow(containerID string, paths []string) {
	if containerID == "" {
		b.dropOnStatusItem(paths)
		return
	}
	b.dropOnContainer(containerID, paths)
}

// quit shuts the engine down, once, and terminates the app: the State
// and the Dispatcher stop (pulls in progress are cancelled), the engine
// stops its VMs and removes its socket.
func (b *bar) quit() {
	b.quitOnce.Do(func() {
		dispatch.MainQueue().DispatchAsync(func() { b.item.Button().SetToolTip("Stopping Berth…") })
		go func() {
			b.disp.Close()
			b.cancel()
			if d := <-b.started; d != nil {
				sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := d.Shutdown(sctx); err != nil {
					d.Logger().Error("shutdown", "err", err)
				}
			}
			dispatch.MainQueue().DispatchAsync(func() { b.app.Terminate(nil) })
		}()
	})
}

// confirm shows c as a modal alert and returns RunModal's answer.
func (b *bar) confirm(c Confirmation) int {
	a := appkit.NewAlert()
	a.SetMessageText(c.Title)
	a.SetInformativeText(c.Message)
	for _, btn := range c.Buttons {
		a.AddButtonWithTitle(btn.Title)
	}
	b.app.ActivateIgnoringOtherApps(true)
	return int(a.RunModal())
}

// dialog shows d as a modal alert with a text field per Field (label
// above field) and returns the fields' text, or false when cancelled.
func (b *bar) dialog(d menu.Dialog) ([]string, bool) {
	const width, row = 320.0, 48.0
	a := appkit.NewAlert()
	a.SetMessageText(d.Title)
	a.SetInformativeText(d.Message)
	a.AddButtonWithTitle(d.OK)
	a.AddButtonWithTitle("Cancel")
	n := float64(len(d.Fields))
	view := appkit.NewViewWithFrame(rect(0, 0, width, n*row))
	fields := make([]appkit.TextField, len(d.Fields))
	for i, f := range d.Fields {
		top := (n - float64(i)) * row // AppKit's y grows upwards
		label := appkit.TextField_LabelWithString(f.Label)
		label.SetFrame(rect(0, top-18, width, 17))
		field := appkit.TextField_TextFieldWithString(f.Value)
		field.SetPlaceholderString(f.Placeholder)
		field.SetFrame(rect(0, top-44, width, 24))
		view.AddSubview(label)
		view.AddSubview(field)
		fields[i] = field
	}
	a.SetAccessoryView(view)
	a.Layout()
	if len(fields) > 0 {
		a.Window().SetInitialFirstResponder(fields[0])
	}
	b.app.ActivateIgnoringOtherApps(true)
	if int(a.RunModal()) != alertFirstButton {
		return nil, false
	}
	texts := make([]string, len(fields))
	for i, f := range fields {
		texts[i] = f.StringValue()
	}
	return texts, true
}

// alert shows a modal alert with an OK button.
func (b *bar) alert(title, msg string, style appkit.AlertStyle) {
	a := appkit.NewAlert()
	a.SetMessageText(title)
	a.SetInformativeText(msg)
	a.SetAlertStyle(style)
	b.app.ActivateIgnoringOtherApps(true)
	a.RunModal()
}

func rect(x, y, w, h float64) foundation.Rect {
	return foundation.Rect{Origin: foundation.Point{X: x, Y: y}, Size: foundation.Size{Width: w, Height: h}}
}

// notify posts n as a user notification. darwinkit v0.5.0 has no binding
// for the UserNotifications framework, and its NSUserNotification binding
// has no setters (the API is deprecated), so the calls are made through
// objc, as darwinkit's notification example does. Berth.app's bundle
// identifier is what macOS needs to deliver it.
func notify(n menu.Notice) {
	objc.WithAutoreleasePool(func() {
		note := objc.Call[objc.Object](objc.GetClass("NSUserNotification"), objc.Sel("new"))
		note.Autorelease()
		objc.Call[objc.Void](note, objc.Sel("setTitle:"), n.Title)
		objc.Call[objc.Void](note, objc.Sel("setInformativeText:"), n.Body)
		center := objc.Call[objc.Object](objc.GetClass("NSUserNotificationCenter"), objc.Sel("defaultUserNotificationCenter"))
		objc.Call[objc.Void](center, objc.Sel("deliverNotification:"), note)
	})
}
