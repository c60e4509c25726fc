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

// This file makes a terminal window's web view a drop target for Finder
// items: a WKWebView subclass built with darwinkit's objc class builder
// (as darwinkit's subclass example builds NSView and NSSplitView ones)
// that overrides the NSDraggingDestination methods. It only reads the
// dropped file URLs and hands their paths to the window's handler; what
// a drop means is app/drop's decision, made by the caller. Type-checked
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
	dropHandlers sync.Map // unsafe.Pointer → func([]string)
)

// newDropWebView makes a web view with config that hands the paths of
// Finder items dropped on it to onDrop, on the main queue, after the
// drag has ended (so that onDrop may show modal alerts). Drags without
// file URLs are refused: the terminal page takes no drops of its own.
func newDropWebView(config webkit.WebViewConfiguration, onDrop func(paths []string)) webkit.WebView {
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

// forgetDropTarget drops view's handler (its window closed).
func forgetDropTarget(view webkit.WebView) { dropHandlers.Delete(view.Ptr()) }

// DraggingEntered accepts a drag that carries file URLs, as a copy.
func (v berthDropWebView) DraggingEntered(sender objc.Object) appkit.DragOperation {
	return FileDragOperation(sender)
}

// DraggingUpdated answers as DraggingEntered (WKWebView's own answer
// would ask the page, which takes no drops).
func (v berthDropWebView) DraggingUpdated(sender objc.Object) appkit.DragOperation {
	return FileDragOperation(sender)
}

// PerformDragOperation hands the dropped paths to the view's handler.
func (v berthDropWebView) PerformDragOperation(sender objc.Object) bool {
	h, ok := dropHandlers.Load(unsafe.Pointer(v.Ptr()))
	paths := DroppedPaths(sender)
	if !ok || len(paths) == 0 {
		return false
	}
	onDrop := h.(func([]string))
	dispatch.MainQueue().DispatchAsync(func() { onDrop(paths) })
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
