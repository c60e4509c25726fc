//go:build darwin && cgo

package appwindow

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"unsafe"

	"github.com/berthvm/berth/app/termwindow"
	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/macos/webkit"
	"github.com/progrium/darwinkit/objc"
)

// handlerName is the script message handler the page posts to
// (window.webkit.messageHandlers.berth).
const handlerName = "berth"

// errorDomain is the NSError domain of a failed scheme task.
const errorDomain = "BerthWindowErrorDomain"

// Window is the app's Berth window: at most one at a time. The zero
// value has none open; the app keeps one Window and calls Open for every
// "Open Berth Window". Its fields are used on the main queue only.
type Window struct {
	// Log receives what the window cannot show (refused messages,
	// failed drop look-ups); nil: slog's default.
	Log *slog.Logger

	win  *appkit.Window // retained while set (objc.Retain's finalizer releases it)
	page *webPage
	open bool
}

// Open shows the Berth window, from any goroutine: when it is open
// already it is brought forward; otherwise, on the main queue, Open
//  1. makes an NSWindow titled "Berth";
//  2. makes a WKWebViewConfiguration whose URL scheme handler for berth:
//     answers each task from handler (NewRequest, then Serve on a
//     goroutine; the task's context ends when the web view stops it, or
//     with ctx) and whose user content controller has the "berth"
//     script message handler (Receive with hooks, answering the page
//     through a webPage);
//  3. makes the WKWebView with it — one that takes drops of Finder items
//     when hooks.Drop is set (termwindow.NewDropWebView; the row under
//     the drop comes from the page, RowAtScript) — with a navigation
//     delegate that keeps the view on berth://window/ (web links open
//     in the browser) and reloads the page if its web content process
//     dies;
//  4. loads PageURL (with #view for OpenView) and shows the window;
//  5. when the window closes, stops its tasks and loading and removes
//     the message handler.
func (w *Window) Open(ctx context.Context, handler http.Handler, hooks Hooks) {
	w.OpenView(ctx, handler, hooks, "")
}

// OpenView is Open on one of the page's views ("settings", "images",
// "containers"; "" is the page's first): a window already open is
// turned to it (ShowScript), a new one loads PageURL#view.
func (w *Window) OpenView(ctx context.Context, handler http.Handler, hooks Hooks, view string) {
	dispatch.MainQueue().DispatchAsync(func() { w.openOnMain(ctx, handler, hooks, view) })
}

func (w *Window) logger() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

// openOnMain is Open on the main thread.
func (w *Window) openOnMain(ctx context.Context, handler http.Handler, hooks Hooks, pageView string) {
	app := appkit.Application_SharedApplication()
	if w.open {
		if pageView != "" {
			w.page.EvaluateJavaScript(ShowScript(pageView), func(err error) {
				if err != nil {
					w.logger().Warn("berth window: show a view", "view", pageView, "err", err)
				}
			})
		}
		w.win.MakeKeyAndOrderFront(nil)
		app.ActivateIgnoringOtherApps(true)
		return
	}
	log := w.logger()
	win := new(appkit.Window)
	*win = appkit.NewWindowWithSize(1000, 640)
	objc.Retain(win)
	win.SetReleasedWhenClosed(false)
	win.SetTitle("Berth")
	win.SetMinSize(foundation.Size{Width: 560, Height: 360})

	schemes := &schemeHandler{ctx: ctx, handler: handler, tasks: map[unsafe.Pointer]*schemeTask{}}
	config := webkit.NewWebViewConfiguration()
	config.SetURLSchemeHandlerForURLScheme(schemes, Scheme)
	controller := config.UserContentController()
	page := &webPage{log: log}
	controller.AddScriptMessageHandlerName(&messageHandler{hooks: hooks, log: log, page: page}, handlerName)

	var view webkit.WebView
	if hooks.Drop != nil {
		view = termwindow.NewDropWebView(config, func(paths []string, at foundation.Point) {
			dropAt(view, paths, at, hooks.Drop, log)
		})
	} else {
		view = webkit.NewWebViewWithFrameConfiguration(foundation.Rect{}, config)
	}
	objc.Retain(&view)
	page.view = view

	nav := &webkit.NavigationDelegate{}
	nav.SetWebViewDecidePolicyForNavigationActionDecisionHandler(func(_ webkit.WebView, action webkit.NavigationAction, decide func(webkit.NavigationActionPolicy)) {
		decide(termwindow.NavigationPolicy(Host, action.Request().URL()))
	})
	nav.SetWebViewWebContentProcessDidTerminate(func(v webkit.WebView) { v.Reload() })
	view.SetNavigationDelegate(nav)

	// window.open and target=_blank links: the browser for web links,
	// never a new view.
	ui := &webkit.UIDelegate{}
	ui.SetWebViewCreateWebViewWithConfigurationForNavigationActionWindowFeatures(func(_ webkit.WebView, _ webkit.WebViewConfiguration, action webkit.NavigationAction, _ webkit.WindowFeatures) webkit.WebView {
		termwindow.NavigationPolicy(Host, action.Request().URL())
		return webkit.WebView{}
	})
	view.SetUIDelegate(ui)

	delegate := &appkit.WindowDelegate{}
	delegate.SetWindowWillClose(func(foundation.Notification) {
		w.open = false
		page.closed = true
		schemes.stopAll()
		controller.RemoveScriptMessageHandlerForName(handlerName)
		view.StopLoading()
		if hooks.Drop != nil {
			termwindow.ForgetDropTarget(view)
		}
	})
	win.SetDelegate(delegate)

	win.SetContentView(view)
	url := PageURL
	if pageView != "" {
		url += "#" + pageView
	}
	webkit.LoadURL(view, url)
	win.Center()
	w.win, w.page, w.open = win, page, true
	win.MakeKeyAndOrderFront(nil)
	// The menu-bar app is an accessory: bring the window forward.
	app.ActivateIgnoringOtherApps(true)
}

// dropAt asks the page which container row is at the drop point (in
// the view's points from its top left, turned into CSS pixels) and hands
// the answer with paths to drop (main queue). A failed look-up is logged
// and counts as a drop on no row.
func dropAt(view webkit.WebView, paths []string, at foundation.Point, drop func(string, []string), log *slog.Logger) {
	scale := 1.0
	if z := view.PageZoom(); z > 0 {
		scale *= z
	}
	if m := view.Magnification(); m > 0 {
		scale *= m
	}
	view.EvaluateJavaScriptCompletionHandler(RowAtScript(at.X/scale, at.Y/scale), func(res objc.Object, err foundation.Error) {
		id := ""
		switch {
		case !err.IsNil():
			log.Warn("berth window: which row is under the drop", "err", err.LocalizedDescription())
		case !res.IsNil() && res.IsKindOfClass(objc.GetClass("NSString")):
			id = DropTarget(objc.ToGoString(res.Ptr()))
		}
		// Out of WebKit's callback: drop may run modal alerts.
		dispatch.MainQueue().DispatchAsync(func() { drop(id, paths) })
	})
}

// messageHandler is the "berth" WKScriptMessageHandler: each message
// from the page's main frame goes to Receive, on the main thread.
type messageHandler struct {
	hooks Hooks
	log   *slog.Logger
	page  *webPage
}

func (h *messageHandler) HasUserContentControllerDidReceiveScriptMessage() bool { return true }

// UserContentControllerDidReceiveScriptMessage takes {t, d} from the
// page's main frame; anything else, or a message Receive refuses, is
// logged and dropped.
func (h *messageHandler) UserContentControllerDidReceiveScriptMessage(_ webkit.UserContentController, m webkit.ScriptMessage) {
	if !m.FrameInfo().IsMainFrame() {
		return
	}
	t, d, ok := termwindow.BridgeBody(m.Body())
	if !ok {
		h.log.Warn("berth window: a script message that is not {t, d} strings; dropped")
		return
	}
	if err := Receive(t, d, h.hooks, h.page); err != nil {
		h.log.Warn("berth window: script message", "err", err)
	}
}

// webPage is the WKWebView as a Page: scripts run on the main queue, in
// order; a failure that done is not told of is logged. view is set, and
// closed changed, on the main thread only.
type webPage struct {
	view   webkit.WebView
	closed bool
	log    *slog.Logger
}

// EvaluateJavaScript runs script in the page on the main queue. A
// result WebKit cannot convert (the scripts answer undefined) is not an
// error.
func (p *webPage) EvaluateJavaScript(script string, done func(error)) {
	dispatch.MainQueue().DispatchAsync(func() {
		if p.closed {
			done(errors.New("berth window: closed"))
			return
		}
		p.view.EvaluateJavaScriptCompletionHandler(script, func(_ objc.Object, err foundation.Error) {
			if err.IsNil() || (err.Domain() == "WKErrorDomain" && err.Code() == int(webkit.ErrorJavaScriptResultTypeIsUnsupported)) {
				done(nil)
				return
			}
			p.log.Warn("berth window: answer the page", "err", err.LocalizedDescription())
			done(errors.New(err.LocalizedDescription()))
		})
	})
}

// schemeHandler is the berth: WKURLSchemeHandler. WebKit calls it on
// the main thread; tasks is used there only.
type schemeHandler struct {
	ctx     context.Context
	handler http.Handler
	// tasks are the tasks started and not yet ended (finished, failed or
	// stopped), by their object's pointer.
	tasks map[unsafe.Pointer]*schemeTask
}

func (h *schemeHandler) HasWebViewStartURLSchemeTask() bool { return true }

// WebViewStartURLSchemeTask serves the task's request from the handler
// on a goroutine; its answer reaches the task on the main queue.
func (h *schemeHandler) WebViewStartURLSchemeTask(_ webkit.WebView, task webkit.URLSchemeTaskObject) {
	task.Retain() // released when the task ends (schemeTask.end)
	ctx, cancel := context.WithCancel(h.ctx)
	st := &schemeTask{owner: h, task: task, cancel: cancel}
	h.tasks[task.Ptr()] = st
	req := task.Request()
	r, err := NewRequest(ctx, req.HTTPMethod(), req.URL().AbsoluteString(), req.AllHTTPHeaderFields(), req.HTTPBody())
	if err != nil {
		st.Fail(err)
		return
	}
	go Serve(h.handler, r, st)
}

func (h *schemeHandler) HasWebViewStopURLSchemeTask() bool { return true }

// WebViewStopURLSchemeTask ends the task: its request's context is
// cancelled and nothing more is sent to it (WebKit raises an exception
// for a stopped task that is told anything).
func (h *schemeHandler) WebViewStopURLSchemeTask(_ webkit.WebView, task webkit.URLSchemeTaskObject) {
	if st, ok := h.tasks[task.Ptr()]; ok {
		st.end()
	}
}

// stopAll ends every task (the window closed).
func (h *schemeHandler) stopAll() {
	for _, st := range h.tasks {
		st.end()
	}
}

// schemeTask is a WKURLSchemeTask as a Task: each call is dispatched to
// the main queue (in order) and dropped there when the task has ended.
type schemeTask struct {
	owner  *schemeHandler
	task   webkit.URLSchemeTaskObject
	cancel context.CancelFunc
	ended  bool // main queue only
}

// onMain runs f with the task on the main queue, unless it has ended by
// then.
func (t *schemeTask) onMain(f func(task webkit.URLSchemeTaskObject)) {
	dispatch.MainQueue().DispatchAsync(func() {
		if !t.ended {
			f(t.task)
		}
	})
}

// end marks the task ended, cancels its request and lets it go (main
// queue).
func (t *schemeTask) end() {
	if t.ended {
		return
	}
	t.ended = true
	t.cancel()
	delete(t.owner.tasks, t.task.Ptr())
	t.task.Release()
}

// Respond sends the head as an NSHTTPURLResponse.
func (t *schemeTask) Respond(status int, header map[string]string) {
	t.onMain(func(task webkit.URLSchemeTaskObject) {
		resp := foundation.NewHTTPURLResponseWithURLStatusCodeHTTPVersionHeaderFields(task.Request().URL(), status, "HTTP/1.1", header)
		task.DidReceiveResponse(resp.URLResponse)
	})
}

// Data sends b.
func (t *schemeTask) Data(b []byte) {
	t.onMain(func(task webkit.URLSchemeTaskObject) { task.DidReceiveData(b) })
}

// Finish ends the task's response.
func (t *schemeTask) Finish() {
	t.onMain(func(task webkit.URLSchemeTaskObject) {
		task.DidFinish()
		t.end()
	})
}

// Fail ends the task with err as an NSError.
func (t *schemeTask) Fail(err error) {
	t.onMain(func(task webkit.URLSchemeTaskObject) {
		nsErr := foundation.NewErrorWithDomainCodeUserInfo(errorDomain, 1, map[foundation.ErrorUserInfoKey]objc.IObject{
			foundation.LocalizedDescriptionKey: foundation.String_StringWithString(err.Error()),
		})
		task.DidFailWithError(nsErr)
		t.end()
	})
}
