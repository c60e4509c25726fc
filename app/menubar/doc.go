// Package menubar is Berth's macOS menu-bar app (darwinkit): a status item
// whose menu is app/menu's model, hosting the engine in-process. The
// Cocoa glue (menubar_darwin.go; drop_darwin.go for Finder drops on the
// status item and terminal windows and Share Folder…'s open panel;
// loginitem_darwin.go for SMAppService) builds only on darwin with cgo;
// the decisions it makes that are not Cocoa calls (what a Result does,
// the quit and confirmation alerts, a drop's questions and container
// chooser, a terminal URL's ticket, "already running", the status icon)
// are in glue.go, tested on any OS, with app/drop and app/settings.
package menubar
