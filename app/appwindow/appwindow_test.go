package appwindow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/app/settings"
	"github.com/berthvm/berth/engine/home"
)

// recordingTask records what Serve tells it, in order.
type recordingTask struct {
	mu     sync.Mutex
	events []string
	status int
	header map[string]string
	data   chan string
}

func newTask() *recordingTask { return &recordingTask{data: make(chan string, 16)} }

func (t *recordingTask) add(e string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, e)
}

func (t *recordingTask) Respond(status int, header map[string]string) {
	t.mu.Lock()
	t.status, t.header = status, header
	t.mu.Unlock()
	t.add("respond")
}
func (t *recordingTask) Data(b []byte) { t.add("data:" + string(b)); t.data <- string(b) }
func (t *recordingTask) Finish()       { t.add("finish") }
func (t *recordingTask) Fail(err error) {
	t.add("fail:" + err.Error())
}

func (t *recordingTask) got() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.events, "|")
}

func TestNewRequest(t *testing.T) {
	ctx := context.Background()
	r, err := NewRequest(ctx, "POST", "berth://window/ui/api/containers/web/stop?t=1", map[string]string{"Content-Type": "application/json"}, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	if r.Method != "POST" || r.URL.Path != "/ui/api/containers/web/stop" || r.URL.RawQuery != "t=1" || r.Header.Get("Content-Type") != "application/json" || string(body) != "{}" {
		t.Errorf("request %s %s ? %s, %v, body %q", r.Method, r.URL.Path, r.URL.RawQuery, r.Header, body)
	}
	if r, err := NewRequest(ctx, "", "berth://window/", nil, nil); err != nil || r.Method != "GET" || r.Body != http.NoBody {
		t.Errorf("GET /: %v, %v", r, err)
	}
	for _, u := range []string{"berth://terminal/", "https://window/", "berth://user@window/", "berth:window", "%zz"} {
		if _, err := NewRequest(ctx, "GET", u, nil, nil); err == nil {
			t.Errorf("NewRequest(%q) succeeded; want refused", u)
		}
	}
	if _, err := NewRequest(ctx, "POST", "berth://window/x", nil, make([]byte, maxBody+1)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversized body: %v", err)
	}
}

// TestServeStreams: each write reaches the task as it happens, so the
// page's event stream works; the head comes first, the end last.
func TestServeStreams(t *testing.T) {
	next := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"a":1}`)
		http.NewResponseController(w).Flush()
		<-next
		io.WriteString(w, `{"b":2}`)
	})
	task := newTask()
	r, _ := NewRequest(context.Background(), "GET", "berth://window/ui/api/events", nil, nil)
	done := make(chan struct{})
	go func() { Serve(h, r, task); close(done) }()
	select {
	case d := <-task.data:
		if d != `{"a":1}` {
			t.Errorf("first data %q", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first write did not reach the task while the handler ran")
	}
	close(next)
	<-done
	if got := task.got(); got != `respond|data:{"a":1}|data:{"b":2}|finish` {
		t.Errorf("task saw %s", got)
	}
	if task.status != 200 || task.header["Content-Type"] != "application/json" {
		t.Errorf("head %d %v", task.status, task.header)
	}
}

func TestServeStatusesAndEnds(t *testing.T) {
	serve := func(h http.HandlerFunc, ctx context.Context) *recordingTask {
		t.Helper()
		task := newTask()
		r, err := NewRequest(ctx, "GET", "berth://window/x", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		Serve(h, r, task)
		return task
	}
	if got := serve(func(w http.ResponseWriter, r *http.Request) {}, context.Background()).got(); got != "respond|finish" {
		t.Errorf("empty handler: %s", got)
	}
	task := serve(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such container: web", http.StatusNotFound)
	}, context.Background())
	if got := task.got(); got != "respond|data:no such container: web\n|finish" || task.status != 404 {
		t.Errorf("404: %d %s", task.status, got)
	}
	if got := serve(func(w http.ResponseWriter, r *http.Request) { panic("boom") }, context.Background()).got(); !strings.HasPrefix(got, "fail:") || !strings.Contains(got, "boom") {
		t.Errorf("panic: %s", got)
	}
	// The web view stopped the task: the handler sees its context end and
	// the task is told nothing more.
	ctx, cancel := context.WithCancel(context.Background())
	var writeErr error
	task = serve(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		cancel()
		<-r.Context().Done()
		_, writeErr = io.WriteString(w, "after stop")
	}, ctx)
	if got := task.got(); got != "respond|data:first" || !errors.Is(writeErr, context.Canceled) {
		t.Errorf("stopped task: %s, write after stop: %v", got, writeErr)
	}
}

func TestReceive(t *testing.T) {
	var opened []string
	h := Hooks{OpenShell: func(id string) { opened = append(opened, id) }}
	if err := Receive("shell", "web", h, nil); err != nil || len(opened) != 1 || opened[0] != "web" {
		t.Errorf("shell web: %v, opened %v", err, opened)
	}
	for _, m := range [][2]string{{"shell", ""}, {"shell", "../x"}, {"shell", strings.Repeat("a", 129)}, {"exec", "web"}} {
		if err := Receive(m[0], m[1], h, nil); err == nil {
			t.Errorf("Receive(%q, %q) accepted", m[0], m[1])
		}
	}
	if err := Receive("shell", "web", Hooks{}, nil); err == nil {
		t.Error("shell without a hook accepted")
	}
	if len(opened) != 1 {
		t.Errorf("refused messages opened shells: %v", opened)
	}
}

// TestReceivePlugin: the page's palette entry for a plugin's menu entry
// reaches RunPlugin with the plugin's name and arguments; a bad name, a
// malformed or oversized message, or an app without the hook is refused,
// and the hook's refusal is returned.
func TestReceivePlugin(t *testing.T) {
	var ran [][]string
	h := Hooks{RunPlugin: func(p string, args []string) error {
		if p == "gone" {
			return errors.New("no such menu entry")
		}
		ran = append(ran, append([]string{p}, args...))
		return nil
	}}
	if err := Receive("plugin", `{"plugin":"top","args":[]}`, h, nil); err != nil {
		t.Fatal(err)
	}
	if err := Receive("plugin", `{"plugin":"hello","args":["--to","the world"]}`, h, nil); err != nil {
		t.Fatal(err)
	}
	if err := Receive("plugin", `{"plugin":"top"}`, h, nil); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ran); got != "[[top] [hello --to the world] [top]]" {
		t.Errorf("ran %s", got)
	}
	for _, d := range []string{``, `top`, `{"plugin":"../x"}`, `{"plugin":""}`, `{"plugin":"Top"}`, `{"plugin":"top","cmd":"rm"}`,
		`{"plugin":"top","args":["` + strings.Repeat("a", 17<<10) + `"]}`} {
		if err := Receive("plugin", d, h, nil); err == nil {
			t.Errorf("Receive(plugin, %.60q) accepted", d)
		}
	}
	if err := Receive("plugin", `{"plugin":"gone"}`, h, nil); err == nil || !strings.Contains(err.Error(), "no such menu entry") {
		t.Errorf("the hook's refusal: %v", err)
	}
	if err := Receive("plugin", `{"plugin":"top"}`, Hooks{}, nil); err == nil {
		t.Error("plugin without a hook accepted")
	}
	if len(ran) != 3 {
		t.Errorf("refused messages ran plugins: %v", ran)
	}
}

func TestRowAtScript(t *testing.T) {
	for _, tc := range []struct {
		x, y float64
		want string
	}{
		{12, 30.5, "window.berthRowAt(12.00, 30.50)"},
		{math.NaN(), math.Inf(1), "window.berthRowAt(-1.00, -1.00)"},
	} {
		if got := RowAtScript(tc.x, tc.y); !strings.Contains(got, tc.want) || !strings.HasPrefix(got, `(typeof window.berthRowAt === "function"`) {
			t.Errorf("RowAtScript(%v, %v) = %s, want a guarded call of %s", tc.x, tc.y, got, tc.want)
		}
	}
	for in, want := range map[string]string{"0123abcd": "0123abcd", "web-1": "web-1", "": "", "undefined\n": "", "a b": "", "<x>": ""} {
		if got := DropTarget(in); got != want {
			t.Errorf("DropTarget(%q) = %q, want %q", in, got, want)
		}
	}
}

// scriptPage is a Page that records the scripts it is given (a mock:
// the web view is WebKit's).
type scriptPage struct{ scripts []string }

func (p *scriptPage) EvaluateJavaScript(script string, done func(error)) {
	p.scripts = append(p.scripts, script)
	done(nil)
}

// answered decodes the argument of the last berthSettings script.
func (p *scriptPage) answered(t *testing.T) SettingsJSON {
	t.Helper()
	if len(p.scripts) == 0 {
		t.Fatal("the page was not answered")
	}
	s := p.scripts[len(p.scripts)-1]
	const pre = `(typeof window.berthSettings === "function" && window.berthSettings(`
	const post = `), undefined)`
	if !strings.HasPrefix(s, pre) || !strings.HasSuffix(s, post) {
		t.Fatalf("answer %s: not a guarded berthSettings call", s)
	}
	var got SettingsJSON
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(s, pre), post)), &got); err != nil {
		t.Fatalf("answer %s: %v", s, err)
	}
	return got
}

// fakeLoginItem is a settings.LoginItem in memory (a mock: the real one
// is SMAppService, macOS only).
type fakeLoginItem struct {
	status settings.LoginStatus
	err    error
}

func (f *fakeLoginItem) Status() settings.LoginStatus { return f.status }
func (f *fakeLoginItem) Register() error {
	if f.err != nil {
		return f.err
	}
	f.status = settings.LoginEnabled
	return nil
}
func (f *fakeLoginItem) Unregister() error {
	if f.err != nil {
		return f.err
	}
	f.status = settings.LoginNotRegistered
	return nil
}

func TestReceiveSettings(t *testing.T) {
	h, err := home.Resolve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := settings.NewStore(h)
	item := &fakeLoginItem{}
	login := settings.NewLaunchAtLogin(store, item)
	hooks := Hooks{LaunchAtLogin: login.State, SetLaunchAtLogin: login.Set}
	page := &scriptPage{}

	if err := Receive("settings", "", hooks, page); err != nil {
		t.Fatal(err)
	}
	if got := page.answered(t); got != (SettingsJSON{LaunchAtLogin: LoginJSON{Available: true}}) {
		t.Errorf("settings: answered %+v, want available and off", got)
	}
	if err := Receive("set-login", "on", hooks, page); err != nil {
		t.Fatal(err)
	}
	if got := page.answered(t); got != (SettingsJSON{LaunchAtLogin: LoginJSON{Available: true, On: true}}) || item.status != settings.LoginEnabled {
		t.Errorf("set-login on: answered %+v, item %v", got, item.status)
	}
	if s, err := store.Load(); err != nil || !s.LaunchAtLogin {
		t.Errorf("set-login on: settings file %+v, %v; want the choice recorded", s, err)
	}
	if err := Receive("set-login", "off", hooks, page); err != nil || page.answered(t).LaunchAtLogin.On || item.status != settings.LoginNotRegistered {
		t.Errorf("set-login off: %v, answered %+v, item %v", err, page.answered(t), item.status)
	}

	// The system refuses: the page is told why, with the state after,
	// and Receive returns the error.
	item.err = errors.New("Operation not permitted")
	err = Receive("set-login", "on", hooks, page)
	if got := page.answered(t); err == nil || !strings.Contains(got.Error, "Operation not permitted") || got.LaunchAtLogin.On {
		t.Errorf("set-login on, refused: %v, answered %+v", err, got)
	}
	// Berth outside Berth.app: unavailable, with the reason.
	item.err, item.status = nil, settings.LoginNotFound
	if err := Receive("settings", "", hooks, page); err != nil {
		t.Fatal(err)
	}
	if got := page.answered(t); got.LaunchAtLogin.Available || got.LaunchAtLogin.Reason != settings.ReasonNotFound {
		t.Errorf("settings outside the app bundle: %+v", got)
	}

	n := len(page.scripts)
	for _, m := range [][2]string{{"set-login", ""}, {"set-login", "yes"}, {"set-login", "on\n"}} {
		if err := Receive(m[0], m[1], hooks, page); err == nil {
			t.Errorf("Receive(%q, %q) accepted", m[0], m[1])
		}
	}
	for _, m := range [][2]string{{"settings", ""}, {"set-login", "on"}} {
		if err := Receive(m[0], m[1], Hooks{}, page); err == nil {
			t.Errorf("Receive(%q, %q) without the settings hooks accepted", m[0], m[1])
		}
	}
	if len(page.scripts) != n {
		t.Errorf("refused messages answered the page: %q", page.scripts[n:])
	}
	if err := Receive("settings", "", hooks, nil); err == nil {
		t.Error("settings with no page to answer: no error")
	}
}

func TestScripts(t *testing.T) {
	s := SettingsScript(SettingsJSON{Error: "</script>\u2028"})
	if strings.Contains(s, "</script>") || strings.Contains(s, "\u2028") {
		t.Errorf("SettingsScript leaves markup or a line separator unescaped: %s", s)
	}
	if got, want := ShowScript(`settings"); alert(1); ("`), `window.berthShow("settings\"); alert(1); (\"")`; !strings.Contains(got, want) {
		t.Errorf("ShowScript = %s, want the view as one string literal", got)
	}
	if SettingsURL != "berth://window/#settings" {
		t.Errorf("SettingsURL = %s", SettingsURL)
	}
}
