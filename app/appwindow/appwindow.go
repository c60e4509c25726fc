package appwindow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/berthvm/berth/app/settings"
	"github.com/berthvm/berth/engine/plugin"
)

// Scheme and Host name the page's URLs: berth://window/PATH.
const (
	Scheme = "berth"
	Host   = "window"
)

// PageURL is the URL the window loads.
const PageURL = Scheme + "://" + Host + "/"

// maxBody bounds a request body from the page (the engine's own limits
// are lower; this only keeps a runaway page from holding memory).
const maxBody = 8 << 20

// NewRequest is the request a scheme task carries, as an *http.Request
// for ctx: berth://window/… only (any other scheme or host, user info or
// opaque URL is an error), with its header fields and body.
func NewRequest(ctx context.Context, method, rawURL string, header map[string]string, body []byte) (*http.Request, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("berth window request %q: %w", rawURL, err)
	}
	if !strings.EqualFold(u.Scheme, Scheme) || !strings.EqualFold(u.Host, Host) || u.User != nil || u.Opaque != "" {
		return nil, fmt.Errorf("berth window request %q: not a berth://%s/ URL", rawURL, Host)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("berth window request %s %s: body of %d bytes (at most %d)", method, u.Path, len(body), maxBody)
	}
	if method == "" {
		method = http.MethodGet
	}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("berth window request %s %s: %w", method, rawURL, err)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	if len(body) == 0 {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	return r, nil
}

// Task is where Serve sends the answer: a WKURLSchemeTask, through the
// main queue. Serve calls Respond once, then Data any number of times,
// then Finish; Fail instead, at any point, ends the task with an error.
type Task interface {
	Respond(status int, header map[string]string)
	Data(b []byte)
	Finish()
	Fail(err error)
}

// Serve runs h for r and streams its answer to t: the head at the first
// write (or when h returns), each write as it happens, then the end. A
// handler that writes nothing answers 200 with an empty body. When r's
// context ends first (the web view stopped the task), Serve returns
// without telling t anything more.
func Serve(h http.Handler, r *http.Request, t Task) {
	w := &streamWriter{task: t, header: http.Header{}, ctx: r.Context()}
	defer func() {
		if p := recover(); p != nil {
			w.fail(fmt.Errorf("berth window: %s %s: internal error: %v", r.Method, r.URL.Path, p))
			return
		}
		w.finish()
	}()
	h.ServeHTTP(w, r)
}

// streamWriter is an http.ResponseWriter (and http.Flusher) over a Task.
type streamWriter struct {
	task   Task
	header http.Header
	ctx    context.Context

	mu     sync.Mutex
	status int // 0 until the head is sent
	done   bool
}

func (w *streamWriter) Header() http.Header { return w.header }

// WriteHeader sends the head once; later calls are ignored, as
// net/http does (1xx statuses are not passed on).
func (w *streamWriter) WriteHeader(status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.headLocked(status)
}

func (w *streamWriter) headLocked(status int) {
	if w.status != 0 || w.done || status < 200 {
		return
	}
	w.status = status
	if w.ctx.Err() != nil {
		return
	}
	fields := make(map[string]string, len(w.header))
	for k, v := range w.header {
		fields[k] = strings.Join(v, ", ")
	}
	w.task.Respond(status, fields)
}

// Write sends b now (a copy: the Task may hand it to another goroutine).
func (w *streamWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, errTaskEnded
	}
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	w.headLocked(http.StatusOK)
	if len(b) > 0 {
		w.task.Data(bytes.Clone(b))
	}
	return len(b), nil
}

// Flush has nothing to do: every Write is sent at once.
func (w *streamWriter) Flush() {}

func (w *streamWriter) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.ctx.Err() != nil {
		w.done = true
		return
	}
	if w.status == 0 {
		if w.header.Get("Content-Length") == "" {
			w.header.Set("Content-Length", "0")
		}
		w.headLocked(http.StatusOK)
	}
	w.done = true
	w.task.Finish()
}

func (w *streamWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.ctx.Err() != nil {
		w.done = true
		return
	}
	w.done = true
	w.task.Fail(err)
}

var errTaskEnded = errors.New("berth window: the response has ended")

// Hooks are what the page's script messages, and drops on the window,
// ask of the app. All are called on the main queue.
type Hooks struct {
	// OpenShell opens a terminal window on the container with this ID.
	OpenShell func(containerID string)
	// Drop takes the paths of Finder items dropped on the window and the
	// container whose row they were dropped on (DropTarget of the
	// page's answer to RowAtScript): "" when the drop missed every
	// container row. Nil: the window takes no drops.
	Drop func(containerID string, paths []string)
	// LaunchAtLogin is the state of Launch at Login the Settings view
	// shows (settings.LaunchAtLogin.State). Nil: the settings messages
	// are refused.
	LaunchAtLogin func() settings.LoginState
	// SetLaunchAtLogin turns Launch at Login on or off
	// (settings.LaunchAtLogin.Set) and returns the state after.
	SetLaunchAtLogin func(on bool) (settings.LoginState, error)
	// RunPlugin runs a plugin's menu entry, `berth PLUGIN ARGS…`, as the
	// menu's item does (the app runs only an entry a plugin declared:
	// menu.FindEntry). Nil: the plugin messages are refused.
	RunPlugin func(plugin string, args []string) error
}

// Page is the web view as Receive sees it: somewhere to answer the page
// by running a script in it.
type Page interface {
	// EvaluateJavaScript runs script in the page and calls done once,
	// from any goroutine, with nil once it ran or with why it did not.
	// It must not block.
	EvaluateJavaScript(script string, done func(error))
}

// LoginJSON is Launch at Login as the page's Settings view takes it.
type LoginJSON struct {
	// Available is false where the app cannot change it (Reason says
	// why); the toggle is then disabled.
	Available bool `json:"available"`
	// On: Berth opens at login; Pending: it will once the user allows it
	// in System Settings (Reason says where).
	On      bool   `json:"on"`
	Pending bool   `json:"pending"`
	Reason  string `json:"reason,omitempty"`
}

// SettingsJSON is the app's answer to the page's "settings" and
// "set-login" messages: the argument of the page's
// window.berthSettings.
type SettingsJSON struct {
	LaunchAtLogin LoginJSON `json:"launchAtLogin"`
	// Error is why the last change asked for failed; "" when it worked.
	Error string `json:"error,omitempty"`
}

// SettingsScript is the script that hands s to the page's
// window.berthSettings (nothing happens when the page has none yet).
// encoding/json makes the argument a safe JavaScript literal.
func SettingsScript(s SettingsJSON) string {
	b, err := json.Marshal(s)
	if err != nil { // a struct of strings and bools always encodes
		panic(fmt.Sprintf("berth window: encode settings: %v", err))
	}
	return `(typeof window.berthSettings === "function" && window.berthSettings(` + string(b) + `), undefined)`
}

// ShowScript is the script that turns the open page to one of its views
// ("containers", "images", "settings"); the page's URL fragment (#VIEW)
// chooses the view it opens on.
func ShowScript(view string) string {
	b, _ := json.Marshal(view)
	return `(typeof window.berthShow === "function" && window.berthShow(` + string(b) + `), undefined)`
}

// SettingsURL is the page opened on its Settings view.
const SettingsURL = PageURL + "#settings"

func loginJSON(st settings.LoginState) LoginJSON {
	return LoginJSON{Available: st.Available, On: st.On, Pending: st.Pending, Reason: st.Reason}
}

// RowAtScript is the script that asks the page which container row is
// at (x, y), in the page's CSS pixels from the top left of its
// viewport: the page's window.berthRowAt answers the row's container ID,
// or "" (also when the page has no such function yet, e.g. still
// loading).
func RowAtScript(x, y float64) string {
	f := func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			v = -1
		}
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return `(typeof window.berthRowAt === "function" ? String(window.berthRowAt(` + f(x) + `, ` + f(y) + `) ?? "") : "")`
}

// DropTarget is the container a drop goes to, from the page's answer to
// RowAtScript: a container ID, or "" for anything else.
func DropTarget(answer string) string {
	if !validID(answer) {
		return ""
	}
	return answer
}

// Receive routes one message the page posted to
// window.webkit.messageHandlers.berth ({t, d}):
//   - "shell" with a container ID opens a terminal window on it;
//   - "settings" answers page (SettingsScript) with Launch at Login's
//     state;
//   - "set-login" with "on" or "off" turns Launch at Login on or off and
//     answers page with the state after, and the error when that failed
//     (which Receive also returns);
//   - "plugin" with {"plugin": NAME, "args": [...]} (the page's palette
//     entry for a plugin's menu entry) runs it through RunPlugin.
//
// Anything else is an error naming it.
func Receive(t, d string, h Hooks, page Page) error {
	switch t {
	case "shell":
		if !validID(d) {
			return fmt.Errorf("berth window: shell for %q: not a container ID or name", d)
		}
		if h.OpenShell == nil {
			return errors.New("berth window: shell: this app opens no terminal windows")
		}
		h.OpenShell(d)
		return nil
	case "settings":
		if h.LaunchAtLogin == nil {
			return errors.New("berth window: settings: this app has no settings to show")
		}
		return answer(page, SettingsJSON{LaunchAtLogin: loginJSON(h.LaunchAtLogin())}, nil)
	case "set-login":
		if d != "on" && d != "off" {
			return fmt.Errorf("berth window: set-login %q: want \"on\" or \"off\"", d)
		}
		if h.SetLaunchAtLogin == nil {
			return errors.New("berth window: set-login: this app cannot change Launch at Login")
		}
		st, err := h.SetLaunchAtLogin(d == "on")
		out := SettingsJSON{LaunchAtLogin: loginJSON(st)}
		if err != nil {
			out.Error = err.Error()
			err = fmt.Errorf("berth window: set-login %s: %w", d, err)
		}
		return answer(page, out, err)
	case "plugin":
		var e struct {
			Plugin string   `json:"plugin"`
			Args   []string `json:"args"`
		}
		if len(d) > maxPluginMessage {
			return fmt.Errorf("berth window: plugin: a message of %d bytes, more than %d", len(d), maxPluginMessage)
		}
		dec := json.NewDecoder(strings.NewReader(d))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("berth window: plugin %q: want {\"plugin\": NAME, \"args\": [...]}: %w", d, err)
		}
		if !plugin.ValidName(e.Plugin) {
			return fmt.Errorf("berth window: plugin %q: not a plugin name", e.Plugin)
		}
		if h.RunPlugin == nil {
			return errors.New("berth window: plugin: this app runs no plugins")
		}
		if e.Args == nil {
			e.Args = []string{}
		}
		if err := h.RunPlugin(e.Plugin, e.Args); err != nil {
			return fmt.Errorf("berth window: plugin %s: %w", e.Plugin, err)
		}
		return nil
	}
	return fmt.Errorf("berth window: unknown message %q", t)
}

// answer hands s to the page; err is returned as is (the failure the
// answer reports), or the page's refusal when there was none.
func answer(page Page, s SettingsJSON, err error) error {
	if page == nil {
		return errors.Join(err, errors.New("berth window: settings: no page to answer"))
	}
	// The page not being there to answer (closed, reloading) is the
	// Page's to log: the page asks again when it shows the view.
	page.EvaluateJavaScript(SettingsScript(s), func(error) {})
	return err
}

// maxPluginMessage bounds a "plugin" message: a name and the arguments
// of a menu entry.
const maxPluginMessage = 16 << 10

// validID is a container ID or name as the page sends it: Docker's name
// characters, at most 128 of them.
func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
