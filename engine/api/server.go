// Package api serves Berth's one HTTP API on a unix socket: the subset of
// the Docker Engine API that Berth implements (types from
// github.com/moby/moby/api, so the real docker CLI works against it) and
// Berth's own extensions under /berth/.
//
// Docker paths are served both bare and under a version prefix
// (/v1.44/... to /v1.47/...); a version outside that range gets 400 with
// Docker's wording. Every error body is {"message": "..."} and its status
// comes from the error's errdefs class.
package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

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
	s.imageRoutes()
	s.containerRoutes()
}

// ServeHTTP strips and checks the API version prefix, then dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if v, rest, ok := splitVersion(r.URL.Path); ok {
		if err := checkVersion(v); err != nil {
			s.writeError(w, r, err)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = rest
		r2.URL.RawPath = ""
		r = r2
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.writeError(w, r, errdefs.NotFound(fmt.Errorf("page not found")))
		return
	}
	// Dispatch through the mux itself: it fills in the path values.
	s.mux.ServeHTTP(w, r)
}

// splitVersion splits "/v1.47/containers/json" into "1.47" and
// "/containers/json".
func splitVersion(path string) (v, rest string, ok bool) {
	if !strings.HasPrefix(path, "/v") {
		return "", "", false
	}
	seg, rest, _ := strings.Cut(path[2:], "/")
	major, minor, found := strings.Cut(seg, ".")
	if !found {
		return "", "", false
	}
	if _, err := strconv.Atoi(major); err != nil {
		return "", "", false
	}
	if _, err := strconv.Atoi(minor); err != nil {
		return "", "", false
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

// compareVersions compares two "major.minor" strings numerically.
func compareVersions(a, b string) int {
	pa, pb := strings.SplitN(a, ".", 2), strings.SplitN(b, ".", 2)
	for i := 0; i < 2; i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// maxBody bounds the JSON bodies the API reads.
const maxBody = 4 << 20

// decodeBody reads the request's JSON body into v; a malformed one is an
// invalid argument naming the operation.
func decodeBody(r *http.Request, op string, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(v); err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("%s: malformed request body: %w", op, err))
	}
	return nil
}

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
	if status >= 500 {
		s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, common.ErrorResponse{Message: err.Error()})
}

// contextUntil is ctx ending at t.
func contextUntil(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	return context.WithDeadline(ctx, t)
}
