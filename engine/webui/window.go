package webui

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	web "github.com/berthvm/berth/assets/web"
	"github.com/berthvm/berth/engine/onetime"
	"github.com/berthvm/berth/engine/terminal"
)

// WindowTokenTTL is how long a Berth window sign-in token is good for.
const WindowTokenTTL = terminal.TokenTTL

// windowAPI is the part of the engine's API the Berth window may call
// through /ui/api (docs/berth-window.md): method and path patterns, as
// http.ServeMux takes them, on the unversioned path. Everything else is
// 404 (or 405 for a known path with another method).
var windowAPI = []string{
	"GET /_ping",
	"GET /version",
	"GET /berth/status",
	"GET /events",
	"GET /containers/json",
	"GET /containers/{id}/json",
	"GET /containers/{id}/logs",
	"GET /containers/{id}/stats",
	"POST /containers/create",
	"POST /containers/{id}/start",
	"POST /containers/{id}/stop",
	"POST /containers/{id}/restart",
	"DELETE /containers/{id}",
	"GET /images/json",
	"POST /images/create",
	"DELETE /images/{name...}",
	"POST /berth/containers/{id}/terminals",
	"GET /berth/containers/{id}/shares",
	"DELETE /berth/containers/{id}/shares",
	"GET /berth/plugins/menu",
}

// window is the Berth window's sign-in: one-use tokens, traded once each
// for a session cookie good while the server runs.
type window struct {
	allow  allowedAPI
	tokens *onetime.Store[struct{}]

	mu       sync.Mutex
	sessions [][]byte // few: scanned whole, in constant time each
}

func newWindow(api http.Handler, cfg Config) *window {
	return &window{allow: newAllowedAPI(api), tokens: onetime.New[struct{}](WindowTokenTTL, cfg.Now)}
}

// cookieName is the session cookie's name. Cookies are scoped to a host,
// not a port, so the name carries the port: another server on 127.0.0.1
// neither sees nor overwrites this one's.
func (s *Server) cookieName() string { return "berth_window_" + strconv.Itoa(s.port) }

// WindowURL issues a one-use sign-in token (256 random bits, good for
// WindowTokenTTL) and returns the Berth window's URL with it in the
// fragment, so that the browser never sends it in a request line.
func (s *Server) WindowURL() (string, error) {
	if s.win == nil {
		return "", fmt.Errorf("webui: the Berth window is not served (no API handler)")
	}
	tok, err := s.win.tokens.Issue(struct{}{})
	if err != nil {
		return "", fmt.Errorf("webui: Berth window: %w", err)
	}
	return s.URL() + "/#token=" + tok, nil
}

// strictOrigin: Origin must be present and this server's own.
func (s *Server) strictOrigin(r *http.Request) bool {
	return r.Header.Get("Origin") != "" && s.checkOrigin(r)
}

// windowSession trades a sign-in token (POST body {"token":"…"}) for a
// session cookie: HttpOnly, SameSite=Strict, for this server's port.
func (s *Server) windowSession(w http.ResponseWriter, r *http.Request) {
	if !s.strictOrigin(r) {
		http.Error(w, "the Berth window signs in from its own page only", http.StatusForbidden)
		return
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
		http.Error(w, "expected {\"token\":\"…\"}: "+err.Error(), http.StatusBadRequest)
		return
	}
	if _, ok := s.win.tokens.Redeem(body.Token); !ok {
		http.Error(w, "the sign-in token is not valid (wrong, used or expired): run berth ui again", http.StatusForbidden)
		return
	}
	id, err := onetime.RandomHex(32)
	if err != nil {
		http.Error(w, "make a session: "+err.Error(), http.StatusInternalServerError)
		return
	}
	s.win.mu.Lock()
	s.win.sessions = append(s.win.sessions, []byte(id))
	s.win.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: id, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	w.WriteHeader(http.StatusNoContent)
}

// signedIn is whether r carries a session cookie this server issued.
func (s *Server) signedIn(r *http.Request) bool {
	c, err := r.Cookie(s.cookieName())
	if err != nil || c.Value == "" {
		return false
	}
	s.win.mu.Lock()
	defer s.win.mu.Unlock()
	ok := 0
	for _, id := range s.win.sessions {
		ok |= subtle.ConstantTimeCompare(id, []byte(c.Value))
	}
	return ok == 1
}

// windowAPI forwards an allowed request under /ui/api to the engine's own
// API handler, in-process: Origin (own; required unless GET or HEAD),
// then the session cookie (else 401), then the allowlist (else 404).
func (s *Server) windowAPI(w http.ResponseWriter, r *http.Request) {
	safe := r.Method == http.MethodGet || r.Method == http.MethodHead
	if !s.checkOrigin(r) || (!safe && !s.strictOrigin(r)) {
		http.Error(w, "the Berth window's API answers its own page only", http.StatusForbidden)
		return
	}
	if !s.signedIn(r) {
		http.Error(w, "not signed in to the Berth window: run berth ui and open the URL it prints", http.StatusUnauthorized)
		return
	}
	s.win.allow.ServeHTTP(w, r)
}

// allowedAPI serves a request for /ui/api/PATH as PATH through allow
// (the allowlisted part of the engine's API): 404 for a path that is not
// clean (empty, "." or ".." segments, a trailing slash) or not allowed.
type allowedAPI struct{ allow *http.ServeMux }

func newAllowedAPI(api http.Handler) allowedAPI {
	a := allowedAPI{allow: http.NewServeMux()}
	for _, p := range windowAPI {
		a.allow.Handle(p, api)
	}
	return a
}

func (a allowedAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw := strings.TrimPrefix(r.URL.EscapedPath(), "/ui/api")
	if raw == "" || !cleanPath(raw) {
		http.NotFound(w, r)
		return
	}
	p, err := url.PathUnescape(raw)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = p, raw
	if p == raw {
		r2.URL.RawPath = ""
	}
	r2.RequestURI = r2.URL.RequestURI()
	r2.Header.Del("Cookie") // the window's session is no business of the API's
	a.allow.ServeHTTP(w, r2)
}

// cleanPath is whether an escaped path is absolute and has no empty, "."
// or ".." segment and no trailing slash.
func cleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// windowPage adds the Berth window's page files to mux: / (window.html),
// /window.js and /window.css from the bundle, or 503 with the reason the
// bundle is missing.
func windowPage(mux *http.ServeMux, bundle func() (fs.FS, error)) {
	for pattern, name := range map[string]string{"GET /{$}": "window.html", "GET /window.js": "window.js", "GET /window.css": "window.css"} {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			fsys, ok := bundleOrUnavailable(w, bundle)
			if !ok {
				return
			}
			if _, err := fs.Stat(fsys, name); err != nil {
				http.Error(w, fmt.Sprintf("the web bundle has no %s: rebuild berth after make web", name), http.StatusServiceUnavailable)
				return
			}
			http.ServeFileFS(w, r, fsys, name)
		})
	}
}

// EmbeddedWindow is the Berth window for a web view the app itself owns
// (the macOS app's WKWebView, which loads berth://window/ through a URL
// scheme handler: no port, no other client): the page's files (/,
// /window.js, /window.css, from bundle; nil: web.FS) and /ui/api/…, the
// same allowlisted part of api the loopback server's window gets. There
// is no sign-in: only the app can reach this handler.
func EmbeddedWindow(api http.Handler, bundle func() (fs.FS, error)) http.Handler {
	if bundle == nil {
		bundle = web.FS
	}
	mux := http.NewServeMux()
	windowPage(mux, bundle)
	mux.Handle("/ui/api/", newAllowedAPI(api))
	return mux
}
