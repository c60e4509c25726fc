package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/image"
)

// Builder is the image builder as the API uses it (engine/builder's
// Manager).
type Builder interface {
	Status(ctx context.Context) types.BuilderStatus
	// Start boots the builder unless it runs and waits until BuildKit
	// serves; its error says why it could not.
	Start(ctx context.Context) error
	// Stop shuts the builder VM down; its build cache stays.
	Stop(ctx context.Context) error
	// Prune empties the build cache and reports what went.
	Prune(ctx context.Context) (string, error)
	// Build runs a Dockerfile build in the builder (starting it if need
	// be) and loads the result into the image store, returning it. A
	// build that ran and failed says what failed (BuildKit's message).
	Build(ctx context.Context, req BuildRequest) (*image.Image, error)
}

// errNoBuilder answers the builder endpoints on an engine without one.
var errNoBuilder = errdefs.NotImplemented(errors.New("this engine has no image builder"))

func (s *Server) builderRoutes() {
	s.mux.HandleFunc("GET /berth/builder", s.builderStatus)
	s.mux.HandleFunc("POST /berth/builder/start", s.builderStart)
	s.mux.HandleFunc("POST /berth/builder/stop", s.builderStop)
	s.mux.HandleFunc("POST /berth/builder/prune", s.builderPrune)
	s.mux.HandleFunc("POST /build", s.build)
}

func (s *Server) builderStatus(w http.ResponseWriter, r *http.Request) {
	b := s.backend.Builder()
	if b == nil {
		s.writeError(w, r, errNoBuilder)
		return
	}
	writeJSON(w, http.StatusOK, b.Status(r.Context()))
}

func (s *Server) builderStart(w http.ResponseWriter, r *http.Request) {
	b := s.backend.Builder()
	if b == nil {
		s.writeError(w, r, errNoBuilder)
		return
	}
	if err := b.Start(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) builderStop(w http.ResponseWriter, r *http.Request) {
	b := s.backend.Builder()
	if b == nil {
		s.writeError(w, r, errNoBuilder)
		return
	}
	if err := b.Stop(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) builderPrune(w http.ResponseWriter, r *http.Request) {
	b := s.backend.Builder()
	if b == nil {
		s.writeError(w, r, errNoBuilder)
		return
	}
	report, err := b.Prune(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, types.BuilderPrune{Report: report})
}
