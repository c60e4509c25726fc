//go:build darwin && cgo

package termwindow

import (
	"sync"
	"unsafe"

	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/macos/webkit"
	"github.com/progrium/darwinkit/objc"
)

// This file makes a web view a drop target for Finder items (the
// terminal window's, and the app's Berth window's through
// NewDropWebView): a WKWebView subclass built with darwinkit's objc class builder
// (as darwinkit's subclass example builds NSView and NSSplitView ones)
// that overrides the NSDraggingDestination methods. It only reads the
// dropped file URLs and hands their paths, and where they were dropped,
// to the window's handler; what a drop means is app/drop's decision,
// made by the caller. Type-checked
// on Linux (app/darwincheck); not run here.

// berthDropWebView is the WKWebView subclass (the objc class of the
// same name). Its methods are the overrides; the Go value only carries
// the instance.
type berthDropWebView struct {
	webkit.WebView `objc:"WKWebView"`
}

var (
	// dropClass is the registered subclass, made once per process (an
	// Objective-C class is process-wide).
	dropClass     objc.UserClass[berthDropWebView]
	dropClassOnce sync.Once
	// dropHandlers maps a view's instance pointer to its window's
	// handler. The overrides receive only self, so this process-wide
	// table is how a view finds its window; entries go when the window
	// closes (forgetDropTarget).
	dropHandlers sync.Map // unsafe.Pointer → DropFunc
)

// DropFunc takes the paths of Finder items dropped on a web view and
// the drop point in the view's coordinates with the origin at its top
// left (as the page's CSS pixels are, at zoom 1).
type DropFunc func(paths []string, at foundation.Point)

// NewDropWebView makes a web view with config that hands the paths of
// Finder items dropped on it to onDrop, on the main queue, after the
// drag has ended (so that onDrop may show modal alerts). Drags without
// file URLs are refused, and the page sees no drags: the pages take no
// drops of their own. The window's close must call ForgetDropTarget.
func NewDropWebView(config webkit.WebViewConfiguration, onDrop DropFunc) webkit.WebView {
	dropClassOnce.Do(func() {
		dropClass = objc.NewClass[berthDropWebView](
			objc.Sel("draggingEntered:"),
			objc.Sel("draggingUpdated:"),
			objc.Sel("performDragOperation:"),
		)
		objc.RegisterClass(dropClass)
	})
	alloc := objc.Call[objc.Object](dropClass, objc.Sel("alloc"))
	view := webkit.WebViewFrom(alloc.Ptr()).InitWithFrameConfiguration(foundation.Rect{}, config)
	view.Autorelease()
	view.RegisterForDraggedTypes([]appkit.PasteboardType{appkit.PasteboardTypeFileURL})
	dropHandlers.Store(view.Ptr(), onDrop)
	return view
}

// ForgetDropTarget drops view's handler (its window closed).
func ForgetDropTarget(view webkit.WebView) { dropHandlers.Delete(view.Ptr()) }

// DraggingEntered accepts a drag that carries file URLs, as a copy.
func (v berthDropWebView) DraggingEntered(sender objc.Object) appkit.DragOperation {
	return FileDragOperation(sender)
}

// DraggingUpdated answers as DraggingEntered (WKWebView's own answer
// would ask the page, which takes no drops).
func (v berthDropWebView) DraggingUpdated(sender objc.Object) appkit.DragOperation {
	return FileDragOperation(sender)
}

// PerformDragOperation hands the dropped paths, and the drop point in
// the view's top-left coordinates, to the view's handler.
func (v berthDropWebView) PerformDragOperation(sender objc.Object) bool {
	h, ok := dropHandlers.Load(unsafe.Pointer(v.Ptr()))
	paths := DroppedPaths(sender)
	if !ok || len(paths) == 0 {
		return false
	}
	// The dragging location is in the window's base coordinates
	// (origin bottom left); WKWebView is flipped, but ask rather than
	// assume.
	at := v.ConvertPointFromView(appkit.DraggingInfoObject{Object: sender}.DraggingLocation(), nil)
	if !v.IsFlipped() {
		at.Y = v.Bounds().Size.Height - at.Y
	}
	onDrop := h.(DropFunc)
	dispatch.MainQueue().DispatchAsync(func() { onDrop(paths, at) })
	return true
}

// fileURLsOnly are the pasteboard reading options that read file URLs
// and nothing else.
func fileURLsOnly() ([]objc.IClass, map[appkit.PasteboardReadingOptionKey]objc.IObject) {
	return []objc.IClass{foundation.URLClass},
		map[appkit.PasteboardReadingOptionKey]objc.IObject{appkit.PasteboardURLReadingFileURLsOnlyKey: foundation.Number_NumberWithBool(true)}
}

// FileDragOperation is Copy for a drag (an NSDraggingInfo) with file
// URLs, else None: a drop target's answer to draggingEntered: and
// draggingUpdated:.
func FileDragOperation(sender objc.Object) appkit.DragOperation {
	classes, opts := fileURLsOnly()
	pb := appkit.DraggingInfoObject{Object: sender}.DraggingPasteboard()
	if pb.CanReadObjectForClassesOptions(classes, opts) {
		return appkit.DragOperationCopy
	}
	return appkit.DragOperationNone
}

// DroppedPaths are the host paths of the file URLs a drag (an
// NSDraggingInfo) carries, in the order dragged.
func DroppedPaths(sender objc.Object) []string {
	classes, opts := fileURLsOnly()
	pb := appkit.DraggingInfoObject{Object: sender}.DraggingPasteboard()
	var paths []string
	for _, o := range pb.ReadObjectsForClassesOptions(classes, opts) {
		if p := foundation.URLFrom(o.Ptr()).Path(); p != "" {
			paths = append(paths, p)
		}
	}
	return paths
}
