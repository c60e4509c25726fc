package webui

import (
	"context"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/berthvm/berth/engine/terminal"
)

// recordingAPI stands in for the engine's API handler (engine/api's
// Server, which needs a whole engine; app's e2e test uses the real one):
// it records the method, path and query each forwarded request arrived
// with.
type recordingAPI struct {
	mu  sync.Mutex
	got []string
}

func (a *recordingAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.got = append(a.got, r.Method+" "+r.URL.RequestURI())
	a.mu.Unlock()
	if r.Header.Get("Cookie") != "" {
		http.Error(w, "cookie forwarded", http.StatusTeapot)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *recordingAPI) calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

type windowFixture struct {
	s   *Server
	api *recordingAPI
	now *time.Time
	mu  *sync.Mutex
}

func newWindowFixture(t *testing.T) *windowFixture {
	t.Helper()
	now := time.Now()
	var mu sync.Mutex
	api := &recordingAPI{}
	terms := terminal.NewManager(terminal.Config{Backend: &fakeContainers{}})
	s, err := Start(Config{Terminals: terms, Bundle: notBuilt, API: api, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return &windowFixture{s: s, api: api, now: &now, mu: &mu}
}

func (f *windowFixture) token(t *testing.T) string {
	t.Helper()
	u, err := f.s.WindowURL()
	if err != nil {
		t.Fatal(err)
	}
	prefix := f.s.URL() + "/#token="
	if !strings.HasPrefix(u, prefix) || len(u)-len(prefix) != 64 {
		t.Fatalf("WindowURL %q: want %s and 64 hex digits", u, prefix)
	}
	return u[len(prefix):]
}

// do sends a request; host and origin "" mean the server's own Host and
// no Origin.
func do(t *testing.T, c *http.Client, method, url, host, origin, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func (f *windowFixture) signIn(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp := do(t, c, "POST", f.s.URL()+"/ui/session", "", f.s.URL(), `{"token":"`+f.token(t)+`"}`)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("sign in: status %d, want 204", resp.StatusCode)
	}
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		ck = c
	}
	if ck == nil || ck.Name != f.s.cookieName() || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || len(ck.Value) != 64 {
		t.Fatalf("session cookie %+v: want %s, HttpOnly, SameSite=Strict, 256 bits", ck, f.s.cookieName())
	}
	return c
}

func TestWindowSignIn(t *testing.T) {
	f := newWindowFixture(t)
	own := f.s.URL()
	session := own + "/ui/session"
	cases := []struct {
		name, origin, body string
		want               int
	}{
		{"missing token", own, `{}`, http.StatusForbidden},
		{"wrong token", own, `{"token":"` + strings.Repeat("0", 64) + `"}`, http.StatusForbidden},
		{"no origin", "", `{"token":"` + f.token(t) + `"}`, http.StatusForbidden},
		{"foreign origin", "http://evil.example", `{"token":"` + f.token(t) + `"}`, http.StatusForbidden},
		{"other port", "http://127.0.0.1:1", `{"token":"` + f.token(t) + `"}`, http.StatusForbidden},
		{"not json", own, `token`, http.StatusBadRequest},
	}
	for _, c := range cases {
		if resp := do(t, http.DefaultClient, "POST", session, "", c.origin, c.body); resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
	t.Run("reused", func(t *testing.T) {
		tok := f.token(t)
		if resp := do(t, http.DefaultClient, "POST", session, "", own, `{"token":"`+tok+`"}`); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("first use: status %d, want 204", resp.StatusCode)
		}
		if resp := do(t, http.DefaultClient, "POST", session, "", own, `{"token":"`+tok+`"}`); resp.StatusCode != http.StatusForbidden {
			t.Errorf("second use: status %d, want 403", resp.StatusCode)
		}
	})
	t.Run("refused origin keeps the token", func(t *testing.T) {
		tok := f.token(t)
		do(t, http.DefaultClient, "POST", session, "", "http://evil.example", `{"token":"`+tok+`"}`)
		if resp := do(t, http.DefaultClient, "POST", session, "", own, `{"token":"`+tok+`"}`); resp.StatusCode != http.StatusNoContent {
			t.Errorf("status %d, want 204", resp.StatusCode)
		}
	})
	t.Run("expired", func(t *testing.T) {
		tok := f.token(t)
		f.mu.Lock()
		*f.now = f.now.Add(WindowTokenTTL + time.Second)
		f.mu.Unlock()
		if resp := do(t, http.DefaultClient, "POST", session, "", own, `{"token":"`+tok+`"}`); resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
	})
	t.Run("bad host", func(t *testing.T) {
		if resp := do(t, http.DefaultClient, "POST", session, "evil.example", own, `{"token":"`+f.token(t)+`"}`); resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("status %d, want 421", resp.StatusCode)
		}
	})
	if got := f.api.calls(); len(got) != 0 {
		t.Errorf("API called %v, want never", got)
	}
}

func TestWindowAPI(t *testing.T) {
	f := newWindowFixture(t)
	own := f.s.URL()
	c := f.signIn(t)
	api := own + "/ui/api"

	// Allowed: forwarded with the /ui/api prefix cut and no cookie.
	allowed := []struct{ method, path, origin string }{
		{"GET", "/containers/json", ""},
		{"GET", "/containers/json", own},
		{"GET", "/containers/web/json", ""},
		{"GET", "/containers/web/logs", ""},
		{"GET", "/events", ""},
		{"GET", "/images/json", ""},
		{"POST", "/containers/web/stop", own},
		{"POST", "/containers/web/start", "http://localhost:" + own[len("http://127.0.0.1:"):]},
		{"DELETE", "/containers/web", own},
		{"DELETE", "/images/docker.io/library/busybox:latest", own},
		{"POST", "/berth/containers/web/terminals", own},
		{"GET", "/containers/web/stats?stream=true", ""},
		{"POST", "/containers/create?name=job", own},
		{"POST", "/images/create?fromImage=busybox&tag=1", own},
		{"GET", "/berth/containers/web/shares", ""},
		{"DELETE", "/berth/containers/web/shares?target=/mnt/src", own},
		{"GET", "/berth/plugins/menu", ""},
	}
	for _, a := range allowed {
		if resp := do(t, c, a.method, api+a.path, "", a.origin, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("%s %s: status %d, want 200", a.method, a.path, resp.StatusCode)
		}
	}
	want := make([]string, len(allowed))
	for i, a := range allowed {
		want[i] = a.method + " " + a.path
	}
	if got := f.api.calls(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("API got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	refused := []struct {
		name, method, path, host, origin string
		client                           *http.Client
		want                             int
	}{
		{"no cookie", "GET", "/containers/json", "", "", http.DefaultClient, http.StatusUnauthorized},
		{"no cookie, POST", "POST", "/containers/web/stop", "", own, http.DefaultClient, http.StatusUnauthorized},
		{"foreign origin", "POST", "/containers/web/stop", "", "http://evil.example", c, http.StatusForbidden},
		{"foreign origin, GET", "GET", "/containers/json", "", "http://evil.example", c, http.StatusForbidden},
		{"no origin, POST", "POST", "/containers/web/stop", "", "", c, http.StatusForbidden},
		{"bad host", "GET", "/containers/json", "evil.example:80", "", c, http.StatusMisdirectedRequest},
		{"create, no origin", "POST", "/containers/create", "", "", c, http.StatusForbidden},
		{"create, foreign origin", "POST", "/containers/create", "", "http://evil.example", c, http.StatusForbidden},
		{"create, no cookie", "POST", "/containers/create", "", own, http.DefaultClient, http.StatusUnauthorized},
		{"pull, no origin", "POST", "/images/create?fromImage=busybox", "", "", c, http.StatusForbidden},
		{"pull, foreign origin", "POST", "/images/create?fromImage=busybox", "", "http://evil.example", c, http.StatusForbidden},
		{"not allowed: load", "POST", "/images/load", "", own, c, http.StatusNotFound},
		{"not allowed: push", "POST", "/images/busybox/push", "", own, c, http.StatusNotFound},
		{"not allowed: tag", "POST", "/images/busybox/tag", "", own, c, http.StatusNotFound},
		{"not allowed: build", "POST", "/build", "", own, c, http.StatusNotFound},
		{"not allowed: update", "POST", "/containers/web/update", "", own, c, http.StatusNotFound},
		{"not allowed: archive", "PUT", "/containers/web/archive", "", own, c, http.StatusNotFound},
		{"not allowed: exec", "POST", "/containers/web/exec", "", own, c, http.StatusNotFound},
		{"not allowed: attach", "POST", "/containers/web/attach", "", own, c, http.StatusNotFound},
		{"not allowed: kernel", "PUT", "/berth/kernel", "", own, c, http.StatusNotFound},
		{"not allowed: volumes", "GET", "/volumes", "", "", c, http.StatusNotFound},
		{"not allowed: add a share", "POST", "/berth/containers/web/shares", "", own, c, http.StatusNotFound},
		{"not allowed: plugins, other method", "POST", "/berth/plugins/menu", "", own, c, http.StatusNotFound},
		{"not allowed: plugins, other path", "GET", "/berth/plugins", "", "", c, http.StatusNotFound},
		{"not allowed: share subpath", "DELETE", "/berth/containers/web/shares/x", "", own, c, http.StatusNotFound},
		{"stop sharing, no origin", "DELETE", "/berth/containers/web/shares?target=/mnt/src", "", "", c, http.StatusForbidden},
		{"stop sharing, foreign origin", "DELETE", "/berth/containers/web/shares?target=/mnt/src", "", "http://evil.example", c, http.StatusForbidden},
		{"stop sharing, no cookie", "DELETE", "/berth/containers/web/shares?target=/mnt/src", "", own, http.DefaultClient, http.StatusUnauthorized},
		{"versioned", "GET", "/v1.47/containers/json", "", "", c, http.StatusNotFound},
		{"dot-dot", "GET", "/images/../containers/create", "", "", c, http.StatusNotFound},
		{"encoded dot-dot", "GET", "/images/%2e%2e/volumes", "", "", c, http.StatusNotFound},
		{"bare", "GET", "", "", "", c, http.StatusNotFound},
		{"wrong method", "GET", "/containers/web/stop", "", "", c, http.StatusNotFound},
	}
	for _, r := range refused {
		resp := do(t, r.client, r.method, api+r.path, r.host, r.origin, "")
		if resp.StatusCode != r.want && !(r.want == http.StatusNotFound && resp.StatusCode == http.StatusMethodNotAllowed) {
			t.Errorf("%s: %s %s: status %d, want %d", r.name, r.method, r.path, resp.StatusCode, r.want)
		}
	}
	if got := f.api.calls(); len(got) != len(want) {
		t.Errorf("refused requests reached the API: %v", got[len(want):])
	}

	t.Run("forged cookie", func(t *testing.T) {
		req, _ := http.NewRequest("GET", api+"/containers/json", nil)
		req.AddCookie(&http.Cookie{Name: f.s.cookieName(), Value: strings.Repeat("0", 64)})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
	})
}

// TestEmbeddedWindow: the in-app web view's handler serves the page and
// the same allowlist, with no sign-in and no cookie passed on.
func TestEmbeddedWindow(t *testing.T) {
	api := &recordingAPI{}
	bundle := fstest.MapFS{
		"window.html": {Data: []byte("<!doctype html><title>Berth</title>")},
		"window.js":   {Data: []byte("console.log(1)")},
		"window.css":  {Data: []byte("body{}")},
		"index.html":  {Data: []byte("terminal")},
	}
	h := EmbeddedWindow(api, func() (fs.FS, error) { return bundle, nil })
	get := func(method, path string, header ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "berth://window"+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for path, want := range map[string]string{"/": "<title>Berth</title>", "/window.js": "console.log", "/window.css": "body{}"} {
		if rec := get("GET", path); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: %d %q", path, rec.Code, rec.Body.String())
		}
	}
	if rec := get("GET", "/index.html"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /index.html (not the window's): %d, want 404", rec.Code)
	}
	if rec := get("GET", "/ui/api/containers/json", "Cookie", "a=b"); rec.Code != http.StatusOK {
		t.Errorf("GET /ui/api/containers/json: %d %q (a cookie must not reach the API)", rec.Code, rec.Body.String())
	}
	if rec := get("POST", "/ui/api/containers/web/stop"); rec.Code != http.StatusOK {
		t.Errorf("POST stop: %d", rec.Code)
	}
	for _, p := range []string{"/ui/api/volumes", "/ui/api/images/%2e%2e/volumes", "/ui/api/v1.47/containers/json", "/ui/session"} {
		if rec := get("GET", p); rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %d, want 404", p, rec.Code)
		}
	}
	if got := api.calls(); strings.Join(got, ",") != "GET /containers/json,POST /containers/web/stop" {
		t.Errorf("API calls %v", got)
	}
	notBuiltWin := EmbeddedWindow(api, notBuilt)
	rec := httptest.NewRecorder()
	notBuiltWin.ServeHTTP(rec, httptest.NewRequest("GET", "berth://window/", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "make web") {
		t.Errorf("without the bundle: %d %q", rec.Code, rec.Body.String())
	}
}

// The allowlist is exactly what the page calls (assets/web/src/window/
// main.ts) and docs/berth-window.md lists: nothing that execs, attaches,
// copies files, loads, pushes or builds.
func TestWindowAPIList(t *testing.T) {
	want := []string{
		"GET /_ping", "GET /version", "GET /berth/status", "GET /events",
		"GET /containers/json", "GET /containers/{id}/json", "GET /containers/{id}/logs", "GET /containers/{id}/stats",
		"POST /containers/create",
		"POST /containers/{id}/start", "POST /containers/{id}/stop", "POST /containers/{id}/restart",
		"DELETE /containers/{id}",
		"GET /images/json", "POST /images/create", "DELETE /images/{name...}",
		"POST /berth/containers/{id}/terminals",
		"GET /berth/containers/{id}/shares", "DELETE /berth/containers/{id}/shares",
		"GET /berth/plugins/menu",
	}
	got := append([]string(nil), windowAPI...)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("windowAPI\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
