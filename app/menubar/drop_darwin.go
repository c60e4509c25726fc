//go:build darwin && cgo

package menubar

import (
	"slices"
	"sync"
	"unsafe"

	"github.com/berthvm/berth/app/drop"
	"github.com/berthvm/berth/app/menu"
	"github.com/berthvm/berth/app/termwindow"
	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/objc"
)

// This file is the Cocoa half of folder sharing by drag and drop and by
// Share Folder…: the status item's button as a drop target (asking
// which container), a terminal window's drop (its own container), the
// folder chooser (NSOpenPanel), and acting on app/drop's decision. The
// decisions are app/drop's and glue.go's, tested on any OS; this file
// is type-checked on Linux (app/darwincheck) and not run here.

// berthStatusDropTarget is the delegate class of the status item's
// window: an NSWindow registered for dragged types forwards the
// NSDraggingDestination messages to its delegate, which is how a drop
// on the status item's button is received without subclassing the
// button. Built with darwinkit's objc class builder.
type berthStatusDropTarget struct {
	objc.Object `objc:"NSObject"`
}

var (
	statusDropClass     objc.UserClass[berthStatusDropTarget]
	statusDropClassOnce sync.Once
	// statusDropHandlers maps a target instance to its handler: the
	// overrides receive only self (see termwindow's dropHandlers).
	statusDropHandlers sync.Map // unsafe.Pointer → func([]string)
)

// DraggingEntered accepts drags with file URLs, as a copy.
func (t berthStatusDropTarget) DraggingEntered(sender objc.Object) appkit.DragOperation {
	return termwindow.FileDragOperation(sender)
}

// DraggingUpdated answers as DraggingEntered.
func (t berthStatusDropTarget) DraggingUpdated(sender objc.Object) appkit.DragOperation {
	return termwindow.FileDragOperation(sender)
}

// PerformDragOperation hands the dropped paths to the handler on the
// main queue, after the drag has ended.
func (t berthStatusDropTarget) PerformDragOperation(sender objc.Object) bool {
	h, ok := statusDropHandlers.Load(unsafe.Pointer(t.Ptr()))
	paths := termwindow.DroppedPaths(sender)
	if !ok || len(paths) == 0 {
		return false
	}
	onDrop := h.(func([]string))
	dispatch.MainQueue().DispatchAsync(func() { onDrop(paths) })
	return true
}

// setUpStatusDrop makes the status item's button take drops of Finder
// items (main queue): its window is registered for file URLs, with a
// berthStatusDropTarget as its delegate.
func (b *bar) setUpStatusDrop() {
	win := b.item.Button().Window()
	if win.IsNil() {
		return
	}
	statusDropClassOnce.Do(func() {
		statusDropClass = objc.NewClass[berthStatusDropTarget](
			objc.Sel("draggingEntered:"),
			objc.Sel("draggingUpdated:"),
			objc.Sel("performDragOperation:"),
		)
		objc.RegisterClass(statusDropClass)
	})
	target := statusDropClass.New()
	objc.Retain(&target) // a window's delegate is not retained by it
	statusDropHandlers.Store(target.Ptr(), b.dropOnStatusItem)
	win.RegisterForDraggedTypes([]appkit.PasteboardType{appkit.PasteboardTypeFileURL})
	win.SetDelegateObject(target)
}

// dropOnStatusItem asks which container the dropped paths go to (an
// alert with a pop-up button of DropChooser's titles), then shares them
// with it (main queue).
func (b *bar) dropOnStatusItem(paths []string) {
	ch, err := DropChooser(b.state.Snapshot(), paths)
	if err != nil {
		b.alert("Nothing to share with", err.Error(), appkit.AlertStyleWarning)
		return
	}
	a := appkit.NewAlert()
	a.SetMessageText(ch.Title)
	a.SetInformativeText(ch.Message)
	a.AddButtonWithTitle(ch.OK)
	a.AddButtonWithTitle("Cancel")
	pop := appkit.NewPopUpButtonWithFramePullsDown(rect(0, 0, 320, 26), false)
	pop.AddItemsWithTitles(ch.Titles)
	a.SetAccessoryView(pop)
	b.app.ActivateIgnoringOtherApps(true)
	resp := int(a.RunModal())
	if c, ok := ch.Pick(resp, pop.IndexOfSelectedItem()); ok {
		b.shareDrop(c, paths)
	}
}

// dropOnContainer shares paths dropped on a terminal window, or on a
// container's row in the Berth window, with that container, ref as the
// window names it (main queue).
func (b *bar) dropOnContainer(ref string, paths []string) {
	c, ok := drop.Find(b.state.Snapshot(), ref)
	if !ok {
		b.alert("Share failed", "The container "+ref+" is gone; drop the folder on another container.", appkit.AlertStyleWarning)
		return
	}
	b.shareDrop(c, paths)
}

// shareDrop acts on drop.Decide's decision for paths on c (main queue):
// its questions asked first (QuestionConfirmation), then the shares
// done off the main queue through the Dispatcher, then drop.Summary
// shown: a user notification when nothing failed, else an alert.
func (b *bar) shareDrop(c menu.Container, paths []string) {
	d := drop.Decide(paths, c)
	actions := slices.Clone(d.Share)
	for _, q := range d.Ask {
		conf := QuestionConfirmation(q)
		if a, ok := conf.Choose(b.confirm(conf)); ok {
			actions = append(actions, a)
		}
	}
	go func() {
		var results []menu.Result
		var failed []error
		for _, a := range actions {
			r, err := b.disp.Do(b.ctx, a)
			if err != nil {
				failed = append(failed, err)
				continue
			}
			results = append(results, r)
		}
		title, text, isErr := drop.Summary(d, c, results, failed)
		dispatch.MainQueue().DispatchAsync(func() {
			if isErr {
				b.alert(title, text, appkit.AlertStyleWarning)
				return
			}
			b.item.Button().SetToolTip(title)
			notify(menu.Notice{Title: title, Body: text})
		})
	}()
}

// chooseFolder asks for one folder with an open panel (Share Folder…'s
// dialog, ChooseFolder) and returns its path, or false when cancelled.
func (b *bar) chooseFolder(d menu.Dialog) (string, bool) {
	p := appkit.NewOpenPanel()
	p.SetCanChooseDirectories(true)
	p.SetCanChooseFiles(false)
	p.SetAllowsMultipleSelection(false)
	p.SetCanCreateDirectories(true)
	p.SetTitle(d.Title)
	p.SetMessage(d.Message)
	p.SetPrompt(d.OK)
	b.app.ActivateIgnoringOtherApps(true)
	if p.RunModal() != appkit.ModalResponseOK {
		return "", false
	}
	urls := p.URLs()
	if len(urls) == 0 {
		return "", false
	}
	return urls[0].Path(), true
}
