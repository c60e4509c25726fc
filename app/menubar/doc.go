// Package menubar is Berth's macOS menu-bar app (darwinkit): a status item
// whose menu shows the engine's state, hosting the engine in-process. It
// builds only on darwin; on other systems the package is empty.
package menubar
