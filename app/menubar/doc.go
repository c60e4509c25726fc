// Package menubar is Berth's macOS menu-bar app (darwinkit): a status item
// whose menu is app/menu's model, hosting the engine in-process. The
// Cocoa glue (menubar_darwin.go) builds only on darwin with cgo; the
// decisions it makes that are not Cocoa calls (what a Result does, the
// quit and confirmation alerts, a terminal URL's ticket, "already
// running", the status icon) are in glue.go, tested on any OS.
package menubar
