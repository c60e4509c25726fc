// Package webui is the engine's loopback web server: it serves the web
// bundle (assets/web) and the terminal sessions' WebSocket, on 127.0.0.1
// only, on a port it picks (docs/terminal.md).
//
// Every request is checked, in this order:
//  1. Host must be 127.0.0.1:PORT or localhost:PORT, else 421 (a page
//     from another site that a DNS-rebinding attack pointed at 127.0.0.1
//     carries its own host name);
//  2. on /terminal/ws, Origin, when present, must be this server's own
//     (http://127.0.0.1:PORT or http://localhost:PORT), else 403;
//  3. on /terminal/ws, the request must be a WebSocket upgrade (else 400)
//     with a token=TOKEN the terminal Manager redeems (one use, 2
//     minutes, compared in constant time), else 403 and no session.
//
// A client with no Origin (not a browser: browsers always send one on a
// WebSocket) still needs the token.
//
// With Config.API it also serves the Berth window (docs/berth-window.md):
// the page at /, POST /ui/session (own Origin required; a one-use token
// from WindowURL traded for an HttpOnly, SameSite=Strict session cookie)
// and /ui/api/..., an allowlisted part of the engine's API handler,
// called in-process (own Origin, required unless GET; the cookie, else
// 401; not on the list, 404).
package webui

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berthvm/berth/assets/web"
	"github.com/berthvm/berth/engine/terminal"
	"github.com/coder/websocket"
)

// maxInput is the largest message the page may send (a paste).
const maxInput = 1 << 20

// Config configures a Server.
type Config struct {
	// Terminals runs the sessions.
	Terminals *terminal.Manager
	// Log is the engine's logger (default slog.Default()).
	Log *slog.Logger
	// Bundle returns the web bundle (default web.FS); an error is
	// answered with 503 and its text.
	Bundle func() (fs.FS, error)
	// Port is the port to listen on; 0 (the default) picks one.
	Port int
	// API is the engine's Docker-compatible API handler (engine/api's
	// Server); the Berth window calls a part of it through /ui/api. Nil:
	// no Berth window (/ and /ui/ are not served).
	API http.Handler
	// Now is the clock sign-in tokens expire by (default time.Now).
	Now func() time.Time
}

// Server is the running loopback server.
type Server struct {
	terms  *terminal.Manager
	log    *slog.Logger
	bundle func() (fs.FS, error)
	win    *window // nil without Config.API
	ln     net.Listener
	port   int
	srv    *http.Server
	served chan error
	cancel context.CancelFunc
}

// Start listens on 127.0.0.1 and serves in the background until
// Shutdown.
func Start(cfg Config) (*Server, error) {
	if cfg.Terminals == nil {
		return nil, errors.New("webui: no terminal manager")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Bundle == nil {
		cfg.Bundle = web.FS
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("webui: listen on 127.0.0.1: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		terms: cfg.Terminals, log: cfg.Log, bundle: cfg.Bundle, ln: ln,
		port: ln.Addr().(*net.TCPAddr).Port, served: make(chan error, 1), cancel: cancel,
	}
	if cfg.API != nil {
		s.win = newWindow(cfg.API, cfg)
	}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	// Streams (the window's /events and logs) end when shutdown begins.
	s.srv.RegisterOnShutdown(cancel)
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// URL is the server's base URL, http://127.0.0.1:PORT.
func (s *Server) URL() string { return "http://127.0.0.1:" + strconv.Itoa(s.port) }

// TerminalURL is the page's URL for a session token; the token is in the
// fragment, so the browser never sends it in a request line.
func (s *Server) TerminalURL(token string) string { return s.URL() + "/terminal/#token=" + token }

// Shutdown stops the server. Sessions are the terminal Manager's: shut it
// down first, so they are told engine-stopping.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.cancel()
	if serr := <-s.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("webui: shut down: %w", err)
	}
	return nil
}

// Handler is the server's handler (Start serves it; tests call it).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /terminal/ws", s.terminalWS)
	mux.HandleFunc("GET /terminal/", s.page)
	if s.win == nil {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/terminal/", http.StatusFound)
		})
	} else {
		windowPage(mux, s.bundle)
		mux.HandleFunc("POST /ui/session", s.windowSession)
		mux.Handle("/ui/api/", http.HandlerFunc(s.windowAPI))
	}
	return s.checkHost(mux)
}

// own is whether hostport is this server's own, as a Host header or an
// Origin's host.
func (s *Server) own(hostport string) bool {
	p := strconv.Itoa(s.port)
	return hostport == "127.0.0.1:"+p || hostport == "localhost:"+p
}

// checkHost answers 421 to a request for another host.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.own(r.Host) {
			http.Error(w, fmt.Sprintf("Berth serves 127.0.0.1:%d and localhost:%d only, not %q", s.port, s.port, r.Host), http.StatusMisdirectedRequest)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// checkOrigin: a browser's Origin must be this server's own.
func (s *Server) checkOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	return o == "http://127.0.0.1:"+strconv.Itoa(s.port) || o == "http://localhost:"+strconv.Itoa(s.port)
}

// page serves the bundle under /terminal/, or 503 with ErrNotBuilt's
// text.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	if fsys, ok := bundleOrUnavailable(w, s.bundle); ok {
		http.StripPrefix("/terminal/", http.FileServerFS(fsys)).ServeHTTP(w, r)
	}
}

// bundleOrUnavailable returns the web bundle, or answers 503 with the
// reason it is missing (web.ErrNotBuilt's text) and reports false.
func bundleOrUnavailable(w http.ResponseWriter, bundle func() (fs.FS, error)) (fs.FS, bool) {
	fsys, err := bundle()
	if err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err.Error())
		return nil, false
	}
	return fsys, true
}

// terminalWS upgrades to a WebSocket and serves the session its token
// opens.
func (s *Server) terminalWS(w http.ResponseWriter, r *http.Request) {
	if !s.checkOrigin(r) {
		s.log.Warn("terminal: refused a WebSocket: foreign Origin", "status", http.StatusForbidden, "origin", r.Header.Get("Origin"))
		http.Error(w, "a terminal session opens from Berth's own page only", http.StatusForbidden)
		return
	}
	if !isUpgrade(r) {
		http.Error(w, "expected a WebSocket upgrade", http.StatusBadRequest)
		return
	}
	t, err := s.terms.Redeem(r.URL.Query().Get("token"))
	if err != nil {
		// The token itself is not logged: it may be one character off a
		// live one.
		s.log.Warn("terminal: refused a WebSocket: bad token", "status", http.StatusForbidden, "err", err)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns: []string{"127.0.0.1:" + strconv.Itoa(s.port), "localhost:" + strconv.Itoa(s.port)},
	})
	if err != nil {
		s.log.Warn("terminal: WebSocket upgrade failed", "err", err)
		return
	}
	c.SetReadLimit(maxInput)
	if err := s.terms.Serve(r.Context(), &Conn{c: c}, t); err != nil {
		s.log.Warn("terminal session ended", "session", t.Session, "err", err)
	}
}

func isUpgrade(r *http.Request) bool {
	return headerHas(r.Header.Values("Connection"), "upgrade") && headerHas(r.Header.Values("Upgrade"), "websocket")
}

// headerHas is whether a comma-separated header has token, in any case.
func headerHas(values []string, token string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}
