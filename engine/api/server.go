// Package api serves Berth's one HTTP API on a unix socket: the subset of
// the Docker Engine API that Berth implements (types from
// github.com/moby/moby/api, so the real docker CLI works against it) and
// Berth's own extensions under /berth/.
//
// Docker paths are served both bare and under a version prefix
// (/v1.44/... to /v1.47/...); a version outside that range gets 400 with
// Docker's wording. Routing works on the escaped path and never redirects;
// a path served for other methods gets 405 with Allow. Every JSON body
// goes through one bounded decoder (413 over 4 MiB, 400 when malformed or
// followed by anything). Every error body is {"message": "..."} and its
// status comes from the error's errdefs class.
//
// The server consumes the engine through narrow interfaces defined here
// (Backend: System, Images, Containers, Execs, Events, Terminals) that return values,
// never the engine's managers; engine/daemon adapts the engine to them,
// and the tests serve fakes.
package api

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"reflect"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/version"
	"github.com/moby/moby/api/types/common"
)

// Server is the API's HTTP handler.
type Server struct {
	backend Backend
	log     *slog.Logger
	mux     *http.ServeMux
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger for request errors (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// NewServer returns the API handler serving b.
func NewServer(b Backend, opts ...Option) *Server {
	s := &Server{backend: b, log: slog.Default(), mux: http.NewServeMux()}
	for _, o := range opts {
		o(s)
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /_ping", s.ping)
	s.mux.HandleFunc("HEAD /_ping", s.ping)
	s.mux.HandleFunc("GET /version", s.version)
	s.mux.HandleFunc("GET /info", s.info)
	s.mux.HandleFunc("GET /berth/status", s.status)
	s.mux.HandleFunc("GET /berth/kernel", s.kernelGet)
	s.mux.HandleFunc("PUT /berth/kernel", s.kernelSet)
	s.mux.HandleFunc("POST /berth/containers/{id}/terminals", s.terminalOpen)
	s.shareRoutes()
	s.mux.HandleFunc("POST /berth/ui", s.windowOpen)
	s.mux.HandleFunc("GET /berth/plugins/menu", s.pluginMenu)
	s.imageRoutes()
	s.containerRoutes()
	s.volumeRoutes()
	s.networkRoutes()
	s.builderRoutes()
}

// ServeHTTP strips and checks the API version prefix, then dispatches.
//
// Routing works on the escaped path: an encoded slash (%2F) stays part of
// its segment (a container named "/x" is looked up as "/x"), the version
// prefix is cut from the raw path, and a path that is not clean ("..",
// "//", a trailing slash) is not found rather than redirected. A path
// served for other methods answers 405 with an Allow header.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, err := stripVersion(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !cleanPath(r.URL.EscapedPath()) {
		s.writeError(w, r, errdefs.NotFound(errors.New("page not found")))
		return
	}
	if h, pattern := s.mux.Handler(r); pattern == "" || isRedirect(h) {
		if allow := s.allowedMethods(r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.writeError(w, r, withStatus(http.StatusMethodNotAllowed, fmt.Errorf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.EscapedPath(), strings.Join(allow, ", "))))
			return
		}
		s.writeError(w, r, errdefs.NotFound(errors.New("page not found")))
		return
	}
	// Dispatch through the mux itself: it fills in the path values.
	s.mux.ServeHTTP(w, r)
}

// stripVersion checks a version prefix (/v1.47/...) and returns the
// request without it, cut from the escaped path so that no %2F is ever
// decoded into a separator.
func stripVersion(r *http.Request) (*http.Request, error) {
	raw := r.URL.EscapedPath()
	v, rest, ok := splitVersion(raw)
	if !ok {
		return r, nil
	}
	if err := checkVersion(v); err != nil {
		return r, err
	}
	decoded, err := url.PathUnescape(rest)
	if err != nil {
		return r, errdefs.InvalidArgument(fmt.Errorf("invalid path %q: %w", raw, err))
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = decoded
	r2.URL.RawPath = rest
	if decoded == rest {
		r2.URL.RawPath = ""
	}
	return r2, nil
}

// cleanPath reports whether an escaped path is in canonical form: no
// empty, "." or ".." segments and no trailing slash (except "/").
func cleanPath(p string) bool {
	return p == "/" || (strings.HasPrefix(p, "/") && path.Clean(p) == p)
}

// redirectType is the type of net/http's redirect handler, which the mux
// returns for paths it would rewrite; the API never redirects.
var redirectType = reflect.TypeOf(http.RedirectHandler("/", http.StatusTemporaryRedirect))

func isRedirect(h http.Handler) bool { return reflect.TypeOf(h) == redirectType }

// allowedMethods lists the methods the mux serves r's path with.
func (s *Server) allowedMethods(r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := *r
		probe.Method = m
		if h, pattern := s.mux.Handler(&probe); pattern != "" && !isRedirect(h) {
			allow = append(allow, m)
		}
	}
	return allow
}

// splitVersion splits "/v1.47/containers/json" into "1.47" and
// "/containers/json". A version is digits in dot-separated parts, as
// Docker's router takes it ("/v1/", "/v1.47/", "/v99999999999.1/").
func splitVersion(path string) (v, rest string, ok bool) {
	seg, ok := strings.CutPrefix(path, "/v")
	if !ok {
		return "", "", false
	}
	seg, rest, _ = strings.Cut(seg, "/")
	for _, part := range strings.Split(seg, ".") {
		if part == "" || strings.Trim(part, "0123456789") != "" {
			return "", "", false
		}
	}
	return seg, "/" + rest, true
}

// checkVersion answers Docker's messages for versions outside the range.
func checkVersion(v string) error {
	switch {
	case compareVersions(v, version.MinAPIVersion) < 0:
		return errdefs.InvalidArgument(fmt.Errorf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, version.MinAPIVersion))
	case compareVersions(v, version.APIVersion) > 0:
		return errdefs.InvalidArgument(fmt.Errorf("client version %s is too new. Maximum supported API version is %s", v, version.APIVersion))
	}
	return nil
}

// compareVersions compares two dot-separated versions part by part as
// numbers of any length (a missing part is 0).
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		x, y := "0", "0"
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		if c := compareDigits(x, y); c != 0 {
			return c
		}
	}
	return 0
}

// compareDigits compares two decimal numbers given as digit strings.
func compareDigits(x, y string) int {
	x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
	if len(x) != len(y) {
		return cmp.Compare(len(x), len(y))
	}
	return strings.Compare(x, y)
}

// maxBody bounds the JSON bodies the API reads. Raw streams have their
// own limits: an image load's tarball is bounded by the store's import
// limits.
const maxBody = 4 << 20

// decodeBody reads the request's JSON body into v through one bounded
// decoder: a body over maxBody is 413, malformed JSON or anything but
// whitespace after the value is 400, each naming the operation.
func decodeBody(w http.ResponseWriter, r *http.Request, op string, v any) error {
	return decode(w, r, op, v, false)
}

// decodeOptionalBody is decodeBody for endpoints whose body may be empty
// (POST /exec/{id}/start); v is then left as it is.
func decodeOptionalBody(w http.ResponseWriter, r *http.Request, op string, v any) error {
	return decode(w, r, op, v, true)
}

func decode(w http.ResponseWriter, r *http.Request, op string, v any, optional bool) error {
	if r.ContentLength > maxBody {
		return bodyTooLarge(op)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	err := dec.Decode(v)
	if optional && errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		// One value only: valid JSON followed by more is malformed.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = terr
			if err == nil {
				err = errors.New("unexpected data after the JSON value")
			}
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLarge):
		return bodyTooLarge(op)
	case errors.Is(err, io.EOF):
		return errdefs.InvalidArgument(fmt.Errorf("%s: the request body is empty: send a JSON object", op))
	}
	return errdefs.InvalidArgument(fmt.Errorf("%s: malformed request body: %w", op, err))
}

func bodyTooLarge(op string) error {
	return withStatus(http.StatusRequestEntityTooLarge, fmt.Errorf("%s: request body too large: the limit is %d MiB", op, maxBody>>20))
}

// statusError is an error answered with a status that has no errdefs
// class (405, 413): protocol errors of the API itself.
type statusError struct {
	status int
	err    error
}

func withStatus(status int, err error) error { return &statusError{status: status, err: err} }

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers err as Docker does: {"message": ...} with the status
// of its class.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := errdefs.HTTPStatus(err)
	if se := (*statusError)(nil); errors.As(err, &se) {
		status = se.status
	}
	if status >= 500 {
		s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, common.ErrorResponse{Message: err.Error()})
}
