package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/share"
	mobyvolume "github.com/moby/moby/api/types/volume"
)

// Docker's label on anonymous volumes; prune without all=true removes
// only those.
const anonymousLabel = "com.docker.volume.anonymous"

func (s *Server) volumeRoutes() {
	s.mux.HandleFunc("GET /volumes", s.volumeList)
	s.mux.HandleFunc("POST /volumes/create", s.volumeCreate)
	s.mux.HandleFunc("POST /volumes/prune", s.volumePrune)
	s.mux.HandleFunc("GET /volumes/{name}", s.volumeInspect)
	s.mux.HandleFunc("DELETE /volumes/{name}", s.volumeDelete)
}

// volumeJSON is a volume as Docker's API shows it.
func volumeJSON(v share.Volume) mobyvolume.Volume {
	out := mobyvolume.Volume{
		Name:       v.Name,
		Driver:     "local",
		Mountpoint: v.Mountpoint,
		CreatedAt:  v.CreatedAt.UTC().Format(time.RFC3339),
		Labels:     v.Labels,
		Options:    v.Options,
		Scope:      "local",
	}
	if v.Anonymous {
		labels := map[string]string{anonymousLabel: ""}
		for k, val := range v.Labels {
			labels[k] = val
		}
		out.Labels = labels
	}
	return out
}

// matchVolume applies `docker volume ls --filter`: dangling, name
// (substring, as Docker), label, driver.
func (f filters) matchVolume(v mobyvolume.Volume, users int) bool {
	if !f.matchLabels(v.Labels) {
		return false
	}
	if d := f["dangling"]; len(d) > 0 {
		want := d["true"] || d["1"]
		if want != (users == 0) {
			return false
		}
	}
	if names := f["name"]; len(names) > 0 {
		ok := false
		for n := range names {
			ok = ok || strings.Contains(v.Name, n)
		}
		if !ok {
			return false
		}
	}
	if drv := f["driver"]; len(drv) > 0 && !drv[v.Driver] {
		return false
	}
	return true
}

func (s *Server) volumeList(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for k := range f {
		switch k {
		case "dangling", "name", "label", "driver":
		default:
			s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("invalid filter '%s'", k)))
			return
		}
	}
	vs, err := s.backend.Volumes().List()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := mobyvolume.ListResponse{Volumes: []mobyvolume.Volume{}, Warnings: []string{}}
	for _, v := range vs {
		users := len(s.backend.Volumes().Users(v.Name))
		j := volumeJSON(v)
		if f.matchVolume(j, users) {
			resp.Volumes = append(resp.Volumes, j)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) volumeCreate(w http.ResponseWriter, r *http.Request) {
	var req mobyvolume.CreateRequest
	if err := decodeBody(w, r, "create volume", &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.ClusterVolumeSpec != nil {
		s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("cluster volumes are not supported by Berth")))
		return
	}
	v, err := s.backend.Volumes().Create(share.CreateOptions{Name: req.Name, Driver: req.Driver, DriverOpts: req.DriverOpts, Labels: req.Labels})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, volumeJSON(v))
}

func (s *Server) volumeInspect(w http.ResponseWriter, r *http.Request) {
	v, err := s.backend.Volumes().Get(r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, volumeJSON(v))
}

func (s *Server) volumeDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.backend.Volumes().Remove(r.PathValue("name"), boolParam(r, "force")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// volumePrune removes unused volumes: anonymous ones only, unless the
// all filter is true (Docker's API 1.42+), and those the label filters
// pick.
func (s *Server) volumePrune(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	all := f["all"]["true"] || f["all"]["1"]
	delete(f, "all")
	rep, err := s.backend.Volumes().Prune(func(v share.Volume) bool {
		if !all && !v.Anonymous {
			return false
		}
		j := volumeJSON(v)
		for want := range f["label!"] {
			k, val, hasValue := strings.Cut(want, "=")
			if got, ok := j.Labels[k]; ok && (!hasValue || got == val) {
				return false
			}
		}
		return f.matchLabels(j.Labels)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if rep.Deleted == nil {
		rep.Deleted = []string{}
	}
	writeJSON(w, http.StatusOK, mobyvolume.PruneReport{VolumesDeleted: rep.Deleted, SpaceReclaimed: rep.SpaceReclaimed})
}
