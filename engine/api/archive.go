package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/tarcopy"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// docker cp: /containers/{id}/archive, as Docker serves it. HEAD answers
// the path's stat in the X-Docker-Container-Path-Stat header (base64 of
// its JSON); GET adds the same header to a tar of the path; PUT extracts
// the tar body (plain or gzip) into the path, a directory, with
// noOverwriteDirNonDir and copyUIDGID.

const pathStatHeader = "X-Docker-Container-Path-Stat"

// archivePath is the path query parameter, required.
func archivePath(r *http.Request) (string, error) {
	p := r.URL.Query().Get("path")
	if p == "" {
		return "", errdefs.InvalidArgument(errors.New("archive: the path parameter is required"))
	}
	return p, nil
}

func setPathStat(w http.ResponseWriter, st mobycontainer.PathStat) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode path stat: %w", err)
	}
	w.Header().Set(pathStatHeader, base64.StdEncoding.EncodeToString(b))
	return nil
}

func (s *Server) archiveHead(w http.ResponseWriter, r *http.Request) {
	p, err := archivePath(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.backend.Containers().StatPath(r.Context(), r.PathValue("id"), p)
	if err == nil {
		err = setPathStat(w, st)
	}
	if err != nil {
		// A HEAD answer has no body; the status says it.
		w.WriteHeader(errdefs.HTTPStatus(err))
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) archiveGet(w http.ResponseWriter, r *http.Request) {
	p, err := archivePath(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	started := false
	err = s.backend.Containers().ArchivePath(r.Context(), r.PathValue("id"), p, func(st mobycontainer.PathStat) (io.Writer, error) {
		if err := setPathStat(w, st); err != nil {
			return nil, err
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
		started = true
		return w, nil
	})
	switch {
	case err == nil:
	case !started:
		s.writeError(w, r, err)
	default:
		// The tar is cut short: end the response without its last chunk
		// so that the client sees the failure.
		s.log.Error("archive cut short", "path", p, "err", err)
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) archivePut(w http.ResponseWriter, r *http.Request) {
	p, err := archivePath(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := tarcopy.Decompress(r.Body)
	if err != nil {
		s.writeError(w, r, errdefs.InvalidArgument(err))
		return
	}
	opts := container.ArchiveOptions{
		NoOverwriteDirNonDir: boolParam(r, "noOverwriteDirNonDir"),
		CopyUIDGID:           boolParam(r, "copyUIDGID"),
	}
	if err := s.backend.Containers().ExtractArchive(r.Context(), r.PathValue("id"), p, body, opts); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
