package api

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/engine/image"
	"github.com/klauspost/compress/zstd"
	moby "github.com/moby/moby/api/types/events"
	"github.com/ulikunitz/xz"
)

// BuildRequest is one POST /build as the builder runs it.
type BuildRequest struct {
	types.BuildOptions
	// Context is the build context, an uncompressed tar stream.
	Context io.Reader
	// Progress receives the build's progress, one line at a time.
	Progress func(line string)
}

// buildAux is the aux message naming the built image, as dockerd sends
// it (the docker CLI's -q and --iidfile read it).
type buildAux struct {
	ID string `json:"ID"`
}

// build serves POST /build (the legacy builder's endpoint, which the
// docker CLI uses without buildx, and `berth build`): the body is the
// context tar (plain, gzip, bzip2, xz or zstd); the build runs in the
// image builder's VM; the result is loaded into the image store and
// tagged with every t. The response streams Docker's JSON messages:
// the progress as {"stream"}, the image ID as {"aux":{"ID"}}, a failure
// as {"errorDetail","error"}.
func (s *Server) build(w http.ResponseWriter, r *http.Request) {
	b := s.backend.Builder()
	if b == nil {
		s.writeError(w, r, errNoBuilder)
		return
	}
	req, tags, quiet, err := parseBuildQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := decompressContext(r.Body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req.Context = &drainOnEOF{r: body, raw: r.Body}
	ps := newProgressStream(w)
	// The response may start (the first progress line) only once the
	// whole context was read: an HTTP/1 server may not read a request's
	// body after it began its response. Progress comes after the context
	// was sent to the builder, so this holds; EnableFullDuplex keeps it
	// safe should that order change.
	_ = http.NewResponseController(w).EnableFullDuplex()
	// Once BuildKit reports, the build runs: its failure goes into the
	// stream (with -q too), as dockerd's does.
	req.Progress = func(line string) {
		if quiet {
			ps.start()
		} else {
			ps.send(JSONMessage{Stream: line + "\n"})
		}
	}
	img, err := b.Build(r.Context(), req)
	if err != nil {
		ps.fail(s, r, err)
		return
	}
	ps.send(JSONMessage{Aux: buildAux{ID: img.ID}})
	if quiet {
		// What the docker CLI prints for -q: dockerd's stream holds only
		// the ID.
		ps.send(JSONMessage{Stream: img.ID + "\n"})
	} else {
		ps.send(JSONMessage{Stream: "Successfully built " + shortImageID(img.ID) + "\n"})
	}
	for _, t := range tags {
		if err := s.backend.Images().Tag(r.Context(), img.ID, t); err != nil {
			ps.fail(s, r, fmt.Errorf("tag the built image %s as %s: %w", shortImageID(img.ID), t, err))
			return
		}
		s.backend.Events().Publish(events.Message{Type: moby.ImageEventType, Action: moby.ActionTag, Actor: moby.Actor{ID: img.ID, Attributes: map[string]string{"name": t}}})
		if !quiet {
			ps.send(JSONMessage{Stream: "Successfully tagged " + t + "\n"})
		}
	}
}

// parseBuildQuery reads POST /build's query: what the builder runs, the
// tags and quiet. Parameters only BuildKit's own session API means
// (version=2, outputs) and remote contexts are refused; the legacy
// builder's resource limits (memory, cpu*, shmsize, ulimits) are not
// applied.
func parseBuildQuery(r *http.Request) (BuildRequest, []string, bool, error) {
	q := r.URL.Query()
	var req BuildRequest
	if q.Get("remote") != "" {
		return req, nil, false, errdefs.InvalidArgument(fmt.Errorf("build: remote contexts (a URL or Git repository: %q) are not supported; build from a local directory", q.Get("remote")))
	}
	if q.Get("version") == "2" {
		return req, nil, false, errdefs.InvalidArgument(errors.New("build: BuildKit's session API (version=2, what buildx uses) is not served; use the legacy API (DOCKER_BUILDKIT=0, or docker without buildx) or `berth build`"))
	}
	if q.Get("outputs") != "" {
		return req, nil, false, errdefs.InvalidArgument(errors.New("build: outputs are not supported; the result is loaded into Berth's image store"))
	}
	tags := q["t"]
	for _, t := range tags {
		if _, err := image.ParseReference(t); err != nil {
			return req, nil, false, errdefs.InvalidArgument(fmt.Errorf("build: tag %q: %w", t, err))
		}
	}
	req.Dockerfile = q.Get("dockerfile")
	req.Target = q.Get("target")
	req.Platform = q.Get("platform")
	req.NoCache = boolParam(r, "nocache")
	req.Pull = boolParam(r, "pull")
	if v := q.Get("buildargs"); v != "" {
		var args map[string]*string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			return req, nil, false, errdefs.InvalidArgument(fmt.Errorf("build: buildargs is not a JSON object of strings: %w", err))
		}
		req.BuildArgs = map[string]string{}
		for k, v := range args {
			if v != nil { // null: the client's environment had no value
				req.BuildArgs[k] = *v
			}
		}
	}
	if v := q.Get("labels"); v != "" {
		if err := json.Unmarshal([]byte(v), &req.Labels); err != nil {
			return req, nil, false, errdefs.InvalidArgument(fmt.Errorf("build: labels is not a JSON object of strings: %w", err))
		}
	}
	return req, tags, boolParam(r, "q"), nil
}

// decompressContext returns the build context body as an uncompressed
// tar stream, as dockerd accepts it: plain, gzip, bzip2, xz or zstd.
func decompressContext(body io.Reader) (io.Reader, error) {
	br := bufio.NewReader(body)
	magic, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("build: the context is not valid gzip: %w", err))
		}
		return zr, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("build: the context is not valid xz: %w", err))
		}
		return xr, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("build: the context is not valid zstd: %w", err))
		}
		return zr.IOReadCloser(), nil
	}
	return br, nil
}

// shortImageID is an image ID's first 12 hex digits, as docker shows it.
func shortImageID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// drainOnEOF reads r; at its end it reads raw (the request body r
// decompresses) to its end too: the HTTP server notices a client that
// goes away (Ctrl-C, which cancels the build) only once it read the
// whole body, and a compressed stream may end before its body does.
type drainOnEOF struct {
	r, raw io.Reader
}

func (d *drainOnEOF) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err == io.EOF && d.raw != nil {
		if _, derr := io.Copy(io.Discard, d.raw); derr != nil {
			return n, derr
		}
		d.raw = nil
	}
	return n, err
}
