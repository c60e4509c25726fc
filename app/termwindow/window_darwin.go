//go:build darwin && cgo

package termwindow

import (
	"context"
	"errors"

	"github.com/berthvm/berth/engine/terminal"
	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/macos/webkit"
	"github.com/progrium/darwinkit/objc"
)

// wkErrorDomain is WebKit's NSError domain (WKErrorDomain).
const wkErrorDomain = "WKErrorDomain"

// handlerName is the script message handler the page posts to
// (window.webkit.messageHandlers.berth).
const handlerName = "berth"

// Open opens a terminal window on ticket's session, from any goroutine:
// on the main queue it
//  1. makes an NSWindow titled DefaultTitle;
//  2. makes a WKWebViewConfiguration whose URL scheme handler for berth:
//     answers from the embedded bundle (Bundle) and whose user content
//     controller has the "berth" script message handler (Window.Receive);
//  3. makes the WKWebView with it, with a navigation delegate that keeps
//     the view on berth://terminal/ (web links open in the browser),
//     starts the session when the page has loaded (Window.Loaded) and
//     reloads the page if its web content process dies;
//  4. loads PageURL and shows the window;
//  5. when the window closes, ends the session (Window.Close: its shell
//     is hung up unless detached) and removes the handler.
//
// The session's messages reach the page as window.berthReceive calls on
// the main queue. The window's sessions end with ctx too. When onDrop is
// not nil the web view takes drops of Finder items (drop_darwin.go) and
// hands their paths to onDrop on the main queue; the caller decides
// what they mean for the window's container (ticket.Options.Container).
func Open(ctx context.Context, mgr *terminal.Manager, ticket terminal.Ticket, onDrop func(paths []string)) {
	dispatch.MainQueue().DispatchAsync(func() { openOnMain(ctx, mgr, ticket, onDrop) })
}

// openOnMain is Open on the main thread.
func openOnMain(ctx context.Context, mgr *terminal.Manager, ticket terminal.Ticket, onDrop func(paths []string)) {
	win := appkit.NewWindowWithSize(820, 520)
	objc.Retain(&win)
	win.SetReleasedWhenClosed(false)
	win.SetTitle(DefaultTitle)

	page := &webPage{}
	model := New(ctx, Config{
		Manager: mgr, Page: page, Token: ticket.Token,
		SetTitle: func(title string) {
			dispatch.MainQueue().DispatchAsync(func() { win.SetTitle(title) })
		},
	})

	config := webkit.NewWebViewConfiguration()
	config.SetURLSchemeHandlerForURLScheme(&schemeHandler{bundle: NewBundle()}, Scheme)
	controller := config.UserContentController()
	controller.AddScriptMessageHandlerName(&messageHandler{window: model}, handlerName)

	var view webkit.WebView
	if onDrop != nil {
		view = NewDropWebView(config, func(paths []string, _ foundation.Point) { onDrop(paths) })
	} else {
		view = webkit.NewWebViewWithFrameConfiguration(foundation.Rect{}, config)
	}
	objc.Retain(&view)
	page.view = view

	nav := &webkit.NavigationDelegate{}
	nav.SetWebViewDecidePolicyForNavigationActionDecisionHandler(func(_ webkit.WebView, action webkit.NavigationAction, decide func(webkit.NavigationActionPolicy)) {
		decide(navigationPolicy(action.Request().URL()))
	})
	nav.SetWebViewDidFinishNavigation(func(webkit.WebView, webkit.Navigation) { model.Loaded() })
	nav.SetWebViewWebContentProcessDidTerminate(func(v webkit.WebView) { v.Reload() })
	view.SetNavigationDelegate(nav)

	// window.open (the web links addon): the browser, never a new view.
	ui := &webkit.UIDelegate{}
	ui.SetWebViewCreateWebViewWithConfigurationForNavigationActionWindowFeatures(func(_ webkit.WebView, _ webkit.WebViewConfiguration, action webkit.NavigationAction, _ webkit.WindowFeatures) webkit.WebView {
		navigationPolicy(action.Request().URL())
		return webkit.WebView{}
	})
	view.SetUIDelegate(ui)

	delegate := &appkit.WindowDelegate{}
	delegate.SetWindowWillClose(func(foundation.Notification) {
		model.Close()
		page.closed = true
		controller.RemoveScriptMessageHandlerForName(handlerName)
		view.StopLoading()
		ForgetDropTarget(view)
	})
	win.SetDelegate(delegate)

	win.SetContentView(view)
	webkit.LoadURL(view, PageURL)
	win.Center()
	win.MakeKeyAndOrderFront(nil)
	// The menu-bar app is an accessory: bring the new window forward.
	appkit.Application_SharedApplication().ActivateIgnoringOtherApps(true)
}

// navigationPolicy is NavigationPolicy for the terminal's page.
func navigationPolicy(u foundation.URL) webkit.NavigationActionPolicy {
	return NavigationPolicy(Host, u)
}

// NavigationPolicy is a web view's answer to a navigation to u when its
// page lives at berth://host/: the page's own URLs load, web links open
// in the user's browser, the rest is cancelled (DecideNavigationOn).
// The app's Berth window shares it.
func NavigationPolicy(host string, u foundation.URL) webkit.NavigationActionPolicy {
	switch DecideNavigationOn(host, u.AbsoluteString()) {
	case NavigateAllow:
		return webkit.NavigationActionPolicyAllow
	case NavigateBrowser:
		appkit.Workspace_SharedWorkspace().OpenURL(u)
	}
	return webkit.NavigationActionPolicyCancel
}

// webPage is the WKWebView as a Page. view is set, and closed changed,
// on the main thread only, which is where the scripts run.
type webPage struct {
	view   webkit.WebView
	closed bool
}

// EvaluateJavaScript runs script on the main queue (so in order) and
// reports its outcome to done; a result the bridge does not convert
// (berthReceive returns undefined) is not an error.
func (p *webPage) EvaluateJavaScript(script string, done func(error)) {
	dispatch.MainQueue().DispatchAsync(func() {
		if p.closed {
			done(ErrClosed)
			return
		}
		p.view.EvaluateJavaScriptCompletionHandler(script, func(_ objc.Object, err foundation.Error) {
			if err.IsNil() || (err.Domain() == wkErrorDomain && err.Code() == int(webkit.ErrorJavaScriptResultTypeIsUnsupported)) {
				done(nil)
				return
			}
			done(errors.New(err.LocalizedDescription()))
		})
	})
}

// messageHandler is the "berth" WKScriptMessageHandler. It hands each
// message to the window on the main thread, in order (darwinkit's
// AddScriptMessageHandler runs each on a goroutine of its own, which
// could reorder keystrokes).
type messageHandler struct{ window *Window }

func (h *messageHandler) HasUserContentControllerDidReceiveScriptMessage() bool { return true }

// UserContentControllerDidReceiveScriptMessage takes {t, d} from the
// page's main frame; anything else is dropped.
func (h *messageHandler) UserContentControllerDidReceiveScriptMessage(_ webkit.UserContentController, m webkit.ScriptMessage) {
	if !m.FrameInfo().IsMainFrame() {
		return
	}
	t, d, ok := BridgeBody(m.Body())
	if !ok {
		h.window.log.Warn("terminal window: a script message that is not {t, d} strings; dropped")
		return
	}
	h.window.Receive(t, d)
}

// BridgeBody reads t and d from a script message's body, an
// NSDictionary of two NSStrings ({t, d} as the pages post it).
func BridgeBody(body objc.Object) (t, d string, ok bool) {
	if body.IsNil() || !body.IsKindOfClass(objc.GetClass("NSDictionary")) {
		return "", "", false
	}
	dict := foundation.DictionaryFrom(body.Ptr())
	str := objc.GetClass("NSString")
	tv, dv := dict.ValueForKey("t"), dict.ValueForKey("d")
	if tv.IsNil() || dv.IsNil() || !tv.IsKindOfClass(str) || !dv.IsKindOfClass(str) {
		return "", "", false
	}
	return objc.ToGoString(tv.Ptr()), objc.ToGoString(dv.Ptr()), true
}

// schemeHandler is the berth: WKURLSchemeHandler: every request is
// answered at once from the Bundle.
type schemeHandler struct{ bundle *Bundle }

func (h *schemeHandler) HasWebViewStartURLSchemeTask() bool { return true }

// WebViewStartURLSchemeTask answers the task with Bundle.Serve's
// resource, as an HTTP response with its status.
func (h *schemeHandler) WebViewStartURLSchemeTask(_ webkit.WebView, task webkit.URLSchemeTaskObject) {
	u := task.Request().URL()
	r := h.bundle.Serve(u.AbsoluteString())
	resp := foundation.NewHTTPURLResponseWithURLStatusCodeHTTPVersionHeaderFields(u, r.Status, "HTTP/1.1", r.Header())
	task.DidReceiveResponse(resp.URLResponse)
	task.DidReceiveData(r.Body)
	task.DidFinish()
}

func (h *schemeHandler) HasWebViewStopURLSchemeTask() bool { return true }

// WebViewStopURLSchemeTask has nothing to stop: tasks finish as they
// start.
func (h *schemeHandler) WebViewStopURLSchemeTask(webkit.WebView, webkit.URLSchemeTaskObject) {}
