// Package termwindow is the macOS app's terminal window: the terminal page
// (assets/web) in a WKWebView, loaded from the berth: URL scheme and
// bridged to an engine/terminal session through a script message handler
// named "berth" — no network port (docs/terminal.md, "The macOS window").
//
// Everything but the Cocoa glue is here, free of build tags, and tested on
// any system:
//   - Bundle: what the berth: scheme handler answers for a URL (a bundle
//     file and its MIME type, 404, or the not-built page);
//     DecideNavigationOn keeps the web view on berth://terminal/ (and
//     the app's Berth window, app/appwindow, on berth://window/).
//   - Conn: a terminal.Conn over the bridge; page → Go messages arrive
//     through Conn.Deliver (from Window.Receive), Go → page ones leave as
//     window.berthReceive({t, d}) calls through a Page.
//   - Window: one window's sessions: it starts the window's own session
//     once the page has loaded, opens a new one for the page's Reconnect
//     ({t: "open", d: TOKEN}), titles the window "NAME — STATE" from the
//     session's hello, and ends the session when the window closes.
//
// window_darwin.go (darwin && cgo) creates the NSWindow and WKWebView and
// calls into these; Open is its entry point. Its drop-taking web view
// (NewDropWebView), NavigationPolicy and BridgeBody are shared with
// app/appwindow's Berth window. It is type-checked on Linux
// (make darwin-check); TestBridgeInChromium runs the real page over the
// same bridge in chromium instead of WebKit.
package termwindow
