package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/berthvm/berth/app/appwindow"
	"github.com/berthvm/berth/app/settings"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/webui"
)

// httpTask is an appwindow.Task that answers an HTTP request: what the
// app's WKURLSchemeHandler does with a scheme task, here for chromium.
type httpTask struct {
	mu sync.Mutex
	w  http.ResponseWriter
}

func (t *httpTask) Respond(status int, header map[string]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range header {
		t.w.Header().Set(k, v)
	}
	t.w.WriteHeader(status)
}

func (t *httpTask) Data(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w.Write(b)
	http.NewResponseController(t.w).Flush()
}

// Finish has nothing to do: the response ends when Serve returns.
func (t *httpTask) Finish() {}

func (t *httpTask) Fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	http.Error(t.w, err.Error(), http.StatusBadGateway)
}

// TestAppWindowPath loads the real Berth window page in chromium over the
// path the macOS app's web view takes — each request made an
// appwindow.NewRequest for berth://window/…, answered by appwindow.Serve
// from webui.EmbeddedWindow over the real engine's API handler (here
// carried over a loopback HTTP server, since chromium has no berth:
// scheme handler) — with no sign-in: the image is listed, and a
// container created from the CLI appears live, through the streamed
// /events. No VM boots: the container is only created.
func TestAppWindowPath(t *testing.T) {
	d, h := inProcessDaemon(t)
	dir := h.Dir

	win := webui.EmbeddedWindow(d.APIHandler(), nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		header := map[string]string{}
		for k := range r.Header {
			header[k] = r.Header.Get(k)
		}
		req, err := appwindow.NewRequest(r.Context(), r.Method, appwindow.PageURL+r.URL.RequestURI()[1:], header, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		task := &httpTask{w: w}
		appwindow.Serve(win, req, task)
	}))
	// Closed after the browser (cleanups run last-in first-out): Close
	// waits for the page's open /events stream.
	t.Cleanup(srv.Close)

	p := startWindowDriver(t, srv.URL+"/")
	p.call(nil, "open")
	p.call(nil, "view", "images")
	var cols []string
	p.call(&cols, "rowText", "berth/busybox:1")
	if len(cols) < 1 || cols[0] != "berth/busybox:1" {
		t.Errorf("image row over the in-app path: %q", cols)
	}
	p.call(nil, "view", "containers")
	mustOK(t, "create", berth(t, dir, "create", "--name", "made-later", "berth/busybox:1", "true"))
	p.call(nil, "state", "made-later", "^Created")
	c, err := d.Engine.Containers().Get("made-later")
	if err != nil {
		t.Fatal(err)
	}
	id := c.ID()

	// A drop on the window: the app asks the page, with
	// appwindow.RowAtScript, which container row is under the drop
	// point; appwindow.DropTarget reads the answer.
	var at struct{ X, Y float64 }
	p.call(&at, "rowCenter", "made-later")
	var answer string
	p.call(&answer, "eval", appwindow.RowAtScript(at.X, at.Y))
	if got := appwindow.DropTarget(answer); got != id {
		t.Errorf("drop on made-later's row at (%v, %v): page answered %q (target %q), want its ID %s", at.X, at.Y, answer, got, id)
	}
	p.call(&answer, "eval", appwindow.RowAtScript(at.X, 2))
	if answer != "" {
		t.Errorf("drop above the table at (%v, 2): page answered %q, want no row", at.X, answer)
	}

	// Shell in the app: the page posts {t: "shell", d: ID} to the app's
	// "berth" message handler (a mock in chromium) instead of opening a
	// tab, and appwindow.Receive routes it to OpenShell.
	var shell struct {
		Posted []struct{ T, D string }
		Tabs   int
	}
	p.call(&shell, "appShell", "made-later")
	if len(shell.Posted) != 1 || shell.Tabs != 0 {
		t.Fatalf("Shell with the app's handler: posted %+v, opened %d tabs; want one message and no tab", shell.Posted, shell.Tabs)
	}
	var opened []string
	hooks := appwindow.Hooks{OpenShell: func(id string) { opened = append(opened, id) }}
	if err := appwindow.Receive(shell.Posted[0].T, shell.Posted[0].D, hooks, nil); err != nil || len(opened) != 1 || opened[0] != id {
		t.Errorf("the page's message %+v: Receive %v, opened %v; want a shell on %s", shell.Posted[0], err, opened, id)
	}

	p.call(nil, "noApp")

	testAppWindowSettings(t, p, d.APIHandler(), h)
}

// driverPage is an appwindow.Page over the window driver: the app's
// answers run in the real page in chromium.
type driverPage struct{ p *windowDriver }

func (d driverPage) EvaluateJavaScript(script string, done func(error)) {
	d.p.call(nil, "eval", script)
	done(nil)
}

// mockLoginItem is a settings.LoginItem in memory (a mock: the real one
// is SMAppService, macOS only).
type mockLoginItem struct{ status settings.LoginStatus }

func (m *mockLoginItem) Status() settings.LoginStatus { return m.status }
func (m *mockLoginItem) Register() error              { m.status = settings.LoginEnabled; return nil }
func (m *mockLoginItem) Unregister() error            { m.status = settings.LoginNotRegistered; return nil }

// settingsShown is the driver's settingsShown.
type settingsShown struct {
	Title, Version, Backend, Home, Kernel, KernelSource string
	Hidden, ListHidden                                  bool
	LoginDisabled, LoginChecked                         bool
	LoginReason                                         string
}

// testAppWindowSettings: the Settings view shows the real engine's
// status; in a browser Launch at Login is disabled with the reason; with
// the app's message handler (mocked in chromium) the page asks for the
// settings and posts set-login, which appwindow.Receive routes to a real
// settings.LaunchAtLogin, answering the real page.
func testAppWindowSettings(t *testing.T, p *windowDriver, api http.Handler, h home.Home) {
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest("GET", "/berth/status", nil))
	var st types.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Version == "" || st.Backend == "" {
		t.Fatalf("GET /berth/status: %d %s: %v", rec.Code, rec.Body, err)
	}

	var shown settingsShown
	p.call(&shown, "settings")
	if shown.Title != "Settings" || shown.Hidden || !shown.ListHidden {
		t.Errorf("Settings view: %+v", shown)
	}
	if !strings.HasPrefix(shown.Version, st.Version) || shown.Backend != st.Backend || shown.Home != st.Home {
		t.Errorf("Settings view shows version %q, backend %q, home %q; the engine says %q, %q, %q", shown.Version, shown.Backend, shown.Home, st.Version, st.Backend, st.Home)
	}
	if st.Kernel.Source != "" && shown.KernelSource != st.Kernel.Source {
		t.Errorf("kernel from %q, the engine says %q", shown.KernelSource, st.Kernel.Source)
	}
	if !shown.LoginDisabled || shown.LoginReason != "Only in the Mac app" {
		t.Errorf("Launch at Login in a browser: disabled %v, reason %q; want disabled, \"Only in the Mac app\"", shown.LoginDisabled, shown.LoginReason)
	}

	item := &mockLoginItem{}
	login := settings.NewLaunchAtLogin(settings.NewStore(h), item)
	hooks := appwindow.Hooks{LaunchAtLogin: login.State, SetLaunchAtLogin: login.Set}
	page := driverPage{p}
	var posted []struct{ T, D string }
	p.call(&posted, "appSettings")
	if len(posted) != 1 || posted[0].T != "settings" {
		t.Fatalf("Settings view with the app's handler posted %+v; want one settings message", posted)
	}
	if err := appwindow.Receive(posted[0].T, posted[0].D, hooks, page); err != nil {
		t.Fatal(err)
	}
	p.call(&shown, "settingsShown")
	if shown.LoginDisabled || shown.LoginChecked || shown.LoginReason != "" {
		t.Errorf("Launch at Login after the app's answer (off, available): %+v", shown)
	}
	var toggled struct {
		Posted   []struct{ T, D string }
		Disabled bool
	}
	p.call(&toggled, "toggleLogin")
	if len(toggled.Posted) != 1 || toggled.Posted[0] != (struct{ T, D string }{"set-login", "on"}) || !toggled.Disabled {
		t.Fatalf("click on Launch at Login: posted %+v, disabled %v; want set-login on, disabled until answered", toggled.Posted, toggled.Disabled)
	}
	if err := appwindow.Receive(toggled.Posted[0].T, toggled.Posted[0].D, hooks, page); err != nil {
		t.Fatal(err)
	}
	p.call(&shown, "settingsShown")
	if item.status != settings.LoginEnabled || shown.LoginDisabled || !shown.LoginChecked {
		t.Errorf("after set-login on: login item %v, page %+v", item.status, shown)
	}
	if s, err := settings.NewStore(h).Load(); err != nil || !s.LaunchAtLogin {
		t.Errorf("after set-login on: settings file %+v, %v", s, err)
	}
	p.call(nil, "noApp")

	// The menu's Settings…: a window already open is turned to the view
	// (appwindow.ShowScript); a new one opens on SettingsURL's fragment.
	var title string
	p.call(&title, "eval", appwindow.ShowScript("images")+`, document.getElementById("title").textContent`)
	if title != "Images" {
		t.Errorf("ShowScript(images): title %q", title)
	}
	p.call(&title, "eval", appwindow.ShowScript("settings")+`, document.getElementById("title").textContent`)
	if title != "Settings" {
		t.Errorf("ShowScript(settings): title %q", title)
	}
	_, frag, _ := strings.Cut(appwindow.SettingsURL, "#")
	p.call(&title, "goto", "#"+frag)
	if title != "Settings" {
		t.Errorf("the window opened on #%s shows %q", frag, title)
	}
}
