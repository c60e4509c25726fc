// Package appwindow is the macOS app's Berth window: the Berth window's
// page (assets/web, window.html) in a WKWebView that loads
// berth://window/ through a URL scheme handler — no port, no sign-in —
// and calls the engine's API in-process through the same allowlist the
// loopback server's window gets (webui.EmbeddedWindow).
//
// Everything but the Cocoa glue is here, free of build tags, and tested
// on any system:
//   - NewRequest turns a scheme task's request (method, URL, header
//     fields, body) into an *http.Request for berth://window/… only;
//   - Serve runs an http.Handler for it and streams the answer to a Task
//     (head, then each write as it happens — the page's /events and logs
//     streams stay open — then the end), and stops when the web view
//     stops the task;
//   - Receive routes the page's script messages ({t: "shell", d: ID}
//     opens a terminal window on that container; {t: "settings"} and
//     {t: "set-login", d: "on"|"off"} read and change Launch at Login,
//     answered through a Page with SettingsScript, which calls the
//     page's window.berthSettings; {t: "plugin", d: {"plugin", "args"}}
//     runs a plugin's menu entry through Hooks.RunPlugin);
//   - ShowScript and SettingsURL turn the page to a view (the menu's
//     Settings… is the page's Settings view);
//   - RowAtScript and DropTarget ask the page which container row a
//     drop of Finder items landed on (the page's window.berthRowAt).
//
// window_darwin.go (darwin && cgo) is Window: the NSWindow and the
// WKWebView (one per app), calling into these; it is type-checked on
// Linux (make darwin-check) and has never run on a Mac.
package appwindow
