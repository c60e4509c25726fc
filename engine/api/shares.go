package api

import (
	"errors"
	"net/http"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
)

// shareRoutes serves a container's run-time shares: list, add, and
// remove by target (DELETE ...?target=/mnt/x).
func (s *Server) shareRoutes() {
	s.mux.HandleFunc("GET /berth/containers/{id}/shares", s.shareList)
	s.mux.HandleFunc("POST /berth/containers/{id}/shares", s.shareAdd)
	s.mux.HandleFunc("DELETE /berth/containers/{id}/shares", s.shareRemove)
}

func (s *Server) shareList(w http.ResponseWriter, r *http.Request) {
	list, err := s.backend.Shares().List(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []types.Share{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) shareAdd(w http.ResponseWriter, r *http.Request) {
	var req types.Share
	if err := decodeBody(w, r, "share folder", &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Source == "" {
		s.writeError(w, r, errdefs.InvalidArgument(errors.New("share folder: no source folder given")))
		return
	}
	sh, err := s.backend.Shares().Add(r.Context(), r.PathValue("id"), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, sh)
}

func (s *Server) shareRemove(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Query().Get("target")
	if target == "" {
		s.writeError(w, r, errdefs.InvalidArgument(errors.New("unshare: no target given (?target=/mnt/NAME)")))
		return
	}
	if err := s.backend.Shares().Remove(r.Context(), r.PathValue("id"), target); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
