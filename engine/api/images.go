package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/engine/image"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	moby "github.com/moby/moby/api/types/events"
	mobyimage "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func (s *Server) imageRoutes() {
	s.mux.HandleFunc("POST /images/create", s.imageCreate)
	s.mux.HandleFunc("GET /images/json", s.imageList)
	s.mux.HandleFunc("POST /images/prune", s.imagePrune)
	s.mux.HandleFunc("POST /images/load", s.imageLoad)
	s.mux.HandleFunc("GET /images/get", s.imageSave)
	s.mux.HandleFunc("POST /berth/images/unpack", s.imageUnpack)
	s.mux.HandleFunc("POST /auth", s.auth)
	// Image names contain slashes (localhost:5000/team/app:1), so the
	// per-image routes take the rest of the path and split off the verb.
	s.mux.HandleFunc("GET /images/{rest...}", s.imageGetRoutes)
	s.mux.HandleFunc("POST /images/{rest...}", s.imagePostRoutes)
	s.mux.HandleFunc("DELETE /images/{rest...}", s.imageDelete)
}

func (s *Server) imageGetRoutes(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	if name, ok := strings.CutSuffix(rest, "/json"); ok {
		s.imageInspect(w, r, name)
		return
	}
	if name, ok := strings.CutSuffix(rest, "/get"); ok {
		s.export(w, r, []string{name})
		return
	}
	s.writeError(w, r, errdefs.NotFound(fmt.Errorf("page not found")))
}

func (s *Server) imagePostRoutes(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	if name, ok := strings.CutSuffix(rest, "/tag"); ok {
		s.imageTag(w, r, name)
		return
	}
	if name, ok := strings.CutSuffix(rest, "/push"); ok {
		s.imagePush(w, r, name)
		return
	}
	s.writeError(w, r, errdefs.NotFound(fmt.Errorf("page not found")))
}

// imagePush sends name:tag (every local tag of name when there is no tag)
// to its registry, streaming dockerd's JSON progress: "The push refers
// to repository [REPO]", per layer Preparing, Pushing, Pushed or "Layer
// already exists", then "TAG: digest: DIGEST size: N" and an aux object
// with Tag, Digest and Size. Credentials come from X-Registry-Auth, as
// for a pull. An image that is not stored is a 404 before the stream
// starts; registry errors come inside the stream.
func (s *Server) imagePush(w http.ResponseWriter, r *http.Request, name string) {
	refs, err := s.pushRefs(r, name, r.URL.Query().Get("tag"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	auth, err := image.AuthFromHeader(r.Header.Get("X-Registry-Auth"))
	if err != nil {
		s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("push %s: X-Registry-Auth: %w", name, err)))
		return
	}
	ps := newProgressStream(w)
	ps.send(JSONMessage{Status: "The push refers to repository [" + repoName(refs[0]) + "]"})
	for _, ref := range refs {
		res, err := s.backend.Images().Push(r.Context(), PushRequest{Ref: ref, Auth: auth, Progress: pushProgress(ps)})
		if err != nil {
			ps.fail(s, r, err)
			return
		}
		ident := res.Tag
		if ident == "" {
			ident = "latest"
		}
		ps.send(JSONMessage{Status: fmt.Sprintf("%s: digest: %s size: %d", ident, res.Digest, res.Size)})
		ps.send(JSONMessage{ProgressDetail: &ProgressDetail{}, Aux: pushResult{Tag: res.Tag, Digest: res.Digest.String(), Size: res.Size}})
		s.backend.Events().Publish(events.Message{Type: moby.ImageEventType, Action: moby.ActionPush, Actor: moby.Actor{ID: res.Ref, Attributes: map[string]string{"name": res.Ref}}})
	}
}

// pushResult is the aux object ending each pushed tag's progress
// (dockerd's types.PushResult).
type pushResult struct {
	Tag    string
	Digest string
	Size   int64
}

// pushRefs are the references a push of name with tag sends: name:tag;
// name itself when it carries a tag or digest; else every stored tag of
// the repository name (dockerd's push without a tag). Each is stored: an
// image the store lacks is errdefs.ErrNotFound with Docker's text.
func (s *Server) pushRefs(r *http.Request, name, tag string) ([]string, error) {
	ref, err := image.ParseReference(name)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", name, err)
	}
	explicit := strings.LastIndexAny(name, ":@") > strings.LastIndex(name, "/")
	switch {
	case tag != "" && !explicit:
		full := name + ":" + tag
		if strings.HasPrefix(tag, "sha256:") {
			full = name + "@" + tag
		}
		if _, err := s.backend.Images().Get(r.Context(), full); err != nil {
			return nil, err
		}
		return []string{full}, nil
	case explicit:
		if _, err := s.backend.Images().Get(r.Context(), name); err != nil {
			return nil, err
		}
		return []string{name}, nil
	}
	imgs, err := s.backend.Images().List(r.Context())
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, img := range imgs {
		for _, t := range img.RepoTags {
			if tr, err := image.ParseReference(t); err == nil && tr.Context().Name() == ref.Context().Name() {
				refs = append(refs, t)
			}
		}
	}
	if len(refs) == 0 {
		return nil, errdefs.NotFound(fmt.Errorf("An image does not exist locally with the tag: %s", name))
	}
	sort.Strings(refs)
	return refs, nil
}

// repoName is the repository dockerd names in a push's first line
// ("docker.io/library/alpine", "localhost:5000/team/app").
func repoName(ref string) string {
	r, err := image.ParseReference(ref)
	if err != nil {
		return ref
	}
	if r.Context().RegistryStr() == "index.docker.io" {
		return "docker.io/" + r.Context().RepositoryStr()
	}
	return r.Context().Name()
}

// pushProgress turns the store's push events into dockerd's progress
// lines.
func pushProgress(ps *progressStream) func(image.Event) {
	lastPush := map[string]time.Time{}
	return func(e image.Event) {
		m := JSONMessage{Status: string(e.State), ID: e.ID, ProgressDetail: &ProgressDetail{}}
		if e.State == image.Pushing {
			if t, ok := lastPush[e.ID]; ok && time.Since(t) < 100*time.Millisecond {
				return
			}
			lastPush[e.ID] = time.Now()
			m.ProgressDetail = &ProgressDetail{Current: e.Current, Total: e.Total}
			m.Progress = progressBar(e.Current, e.Total)
		}
		ps.send(m)
	}
}

// imageCreate pulls fromImage[:tag], streaming Docker's JSON progress.
func (s *Server) imageCreate(w http.ResponseWriter, r *http.Request) {
	req, err := pullRequest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ps := newProgressStream(w)
	if _, err := image.ParseReference(req.Ref); err != nil {
		ps.fail(s, r, err)
		return
	}
	// dockerd's first line names the tag (or digest) being pulled.
	ident := "latest"
	if i := strings.LastIndexAny(req.Ref, ":@"); i > strings.LastIndex(req.Ref, "/") {
		ident = req.Ref[i+1:]
	}
	announce := sync.OnceFunc(func() {
		ps.send(JSONMessage{Status: "Pulling from " + repoPath(req.Ref), ID: ident})
	})
	req.Progress = pullProgress(ps, announce)
	res, err := s.backend.Images().Pull(r.Context(), req)
	if err != nil {
		ps.fail(s, r, err)
		return
	}
	announce()
	ps.send(JSONMessage{Status: "Digest: " + res.Digest.String()})
	if res.Updated {
		ps.send(JSONMessage{Status: "Status: Downloaded newer image for " + res.Ref})
	} else {
		ps.send(JSONMessage{Status: "Status: Image is up to date for " + res.Ref})
	}
	s.backend.Events().Publish(events.Message{Type: moby.ImageEventType, Action: moby.ActionPull, Actor: moby.Actor{ID: res.Ref, Attributes: map[string]string{"name": res.Ref}}})
}

// pullRequest reads POST /images/create's query (fromImage, tag,
// platform) and X-Registry-Auth header.
func pullRequest(r *http.Request) (PullRequest, error) {
	q := r.URL.Query()
	from := q.Get("fromImage")
	if from == "" {
		return PullRequest{}, errdefs.InvalidArgument(errors.New("image create: only pulls are supported (fromImage is required; use POST /images/load to import a tarball)"))
	}
	req := PullRequest{Ref: from}
	if tag := q.Get("tag"); tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			req.Ref += "@" + tag
		} else {
			req.Ref += ":" + tag
		}
	}
	if p := q.Get("platform"); p != "" {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return PullRequest{}, errdefs.InvalidArgument(fmt.Errorf("pull %s: invalid platform %q: %w", req.Ref, p, err))
		}
		req.Platform = plat
	}
	auth, err := image.AuthFromHeader(r.Header.Get("X-Registry-Auth"))
	if err != nil {
		return PullRequest{}, errdefs.InvalidArgument(fmt.Errorf("pull %s: X-Registry-Auth: %w", req.Ref, err))
	}
	req.Auth = auth
	return req, nil
}

// pullProgress turns the store's pull events into dockerd's progress
// lines, announcing the pull before the first.
func pullProgress(ps *progressStream, announce func()) func(image.Event) {
	lastDownload := map[string]time.Time{}
	return func(e image.Event) {
		announce()
		m := JSONMessage{Status: string(e.State), ID: e.ID}
		switch e.State {
		case image.PullingFSLayer, image.Waiting:
			m.ProgressDetail = &ProgressDetail{}
		case image.Downloading:
			// Throttle: dockerd sends a few updates a second per layer.
			if t, ok := lastDownload[e.ID]; ok && time.Since(t) < 100*time.Millisecond && e.Current < e.Total {
				return
			}
			lastDownload[e.ID] = time.Now()
			m.ProgressDetail = &ProgressDetail{Current: e.Current, Total: e.Total}
			m.Progress = progressBar(e.Current, e.Total)
		case image.Retrying:
			if e.Err != nil {
				m.Status = "Retrying: " + e.Err.Error()
			}
		}
		ps.send(m)
	}
}

// repoPath is the repository path dockerd prints ("library/alpine").
func repoPath(ref string) string {
	r, err := image.ParseReference(ref)
	if err != nil {
		return ref
	}
	return r.Context().RepositoryStr()
}

func (s *Server) imageList(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	imgs, err := s.backend.Images().List(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := []mobyimage.Summary{}
	for _, img := range imgs {
		if !f.matchImage(img) {
			continue
		}
		out = append(out, mobyimage.Summary{
			ID:          img.ID,
			RepoTags:    nonNil(img.RepoTags),
			RepoDigests: nonNil(img.RepoDigests),
			Created:     img.Created.Unix(),
			Size:        img.Size,
			Labels:      img.Labels,
			Containers:  -1,
			SharedSize:  -1,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) imageInspect(w http.ResponseWriter, r *http.Request, name string) {
	img, err := s.backend.Images().Get(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, inspectImage(img))
}

// inspectImage maps a stored image to Docker's GET /images/{name}/json.
func inspectImage(img *image.Image) mobyimage.InspectResponse {
	resp := mobyimage.InspectResponse{
		ID:           img.ID,
		RepoTags:     nonNil(img.RepoTags),
		RepoDigests:  nonNil(img.RepoDigests),
		Created:      img.Created.UTC().Format(time.RFC3339Nano),
		Architecture: img.Platform.Architecture,
		Variant:      img.Platform.Variant,
		Os:           img.Platform.OS,
		Size:         img.Size,
		RootFS:       mobyimage.RootFS{Type: "layers"},
		// Added: the pull, load or import tagged it.
		Metadata: mobyimage.Metadata{LastTagTime: img.Added},
		Descriptor: &ocispec.Descriptor{
			MediaType: string(img.Manifest.MediaType),
			Digest:    digestOf(img.Manifest.Digest),
			Size:      img.Manifest.Size,
		},
	}
	if cf := img.Config; cf != nil {
		resp.Author = cf.Author
		for _, d := range cf.RootFS.DiffIDs {
			resp.RootFS.Layers = append(resp.RootFS.Layers, d.String())
		}
		c := cf.Config
		resp.Config = &dockerspec.DockerOCIImageConfig{
			ImageConfig: ocispec.ImageConfig{
				User: c.User, ExposedPorts: c.ExposedPorts, Env: c.Env, Entrypoint: c.Entrypoint,
				Cmd: c.Cmd, Volumes: c.Volumes, WorkingDir: c.WorkingDir, Labels: c.Labels,
				StopSignal: c.StopSignal, ArgsEscaped: c.ArgsEscaped,
			},
			DockerOCIImageConfigExt: dockerspec.DockerOCIImageConfigExt{OnBuild: c.OnBuild, Shell: c.Shell},
		}
	}
	return resp
}

func (s *Server) imageTag(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	repo, tag := q.Get("repo"), q.Get("tag")
	if repo == "" {
		s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("tag %s: repo is required", name)))
		return
	}
	target := repo
	if tag != "" {
		target += ":" + tag
	}
	if err := s.backend.Images().Tag(r.Context(), name, target); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.backend.Events().Publish(events.Message{Type: moby.ImageEventType, Action: moby.ActionTag, Actor: moby.Actor{ID: name, Attributes: map[string]string{"name": target}}})
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) imageDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("rest")
	items, err := s.backend.Images().Remove(r.Context(), name, boolParam(r, "force"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]mobyimage.DeleteResponse, 0, len(items))
	for _, it := range items {
		out = append(out, mobyimage.DeleteResponse{Untagged: it.Untagged, Deleted: it.Deleted})
		if it.Untagged != "" {
			s.backend.Events().Publish(events.Message{Type: moby.ImageEventType, Action: moby.ActionUnTag, Actor: moby.Actor{ID: it.Untagged}})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) imagePrune(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, ok := f["dangling"]
	all := ok && (v["false"] || v["0"])
	rep, err := s.backend.Images().Prune(r.Context(), all)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := mobyimage.PruneReport{ImagesDeleted: []mobyimage.DeleteResponse{}, SpaceReclaimed: rep.SpaceReclaimed}
	for _, it := range rep.ImagesDeleted {
		out.ImagesDeleted = append(out.ImagesDeleted, mobyimage.DeleteResponse{Untagged: it.Untagged, Deleted: it.Deleted})
	}
	writeJSON(w, http.StatusOK, out)
}

// filters is Docker's filters query parameter: key → set of values.
type filters map[string]map[string]bool

// parseFilters reads Docker's filters JSON ({"label":{"a=b":true}}; the
// older {"label":["a=b"]} form too).
func parseFilters(raw string) (filters, error) {
	f := filters{}
	if raw == "" {
		return f, nil
	}
	var m map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &m); err == nil {
		for k, v := range m {
			f[k] = v
		}
		return f, nil
	}
	var l map[string][]string
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid filters %q: %w", raw, err))
	}
	for k, vs := range l {
		f[k] = map[string]bool{}
		for _, v := range vs {
			f[k][v] = true
		}
	}
	return f, nil
}

// matchLabels reports whether labels satisfy every "label" filter
// ("key" or "key=value").
func (f filters) matchLabels(labels map[string]string) bool {
	for want := range f["label"] {
		k, v, hasValue := strings.Cut(want, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}

func (f filters) matchImage(img *image.Image) bool {
	if !f.matchLabels(img.Labels) {
		return false
	}
	if d, ok := f["dangling"]; ok {
		dangling := len(img.RepoTags) == 0
		if (d["true"] || d["1"]) != dangling {
			return false
		}
	}
	if refs, ok := f["reference"]; ok && len(refs) > 0 {
		match := false
		for want := range refs {
			for _, t := range img.RepoTags {
				if t == want || strings.HasPrefix(t, want+":") || t == want+":latest" {
					match = true
				}
			}
		}
		if !match {
			return false
		}
	}
	return true
}

func digestOf(h v1.Hash) digest.Digest { return digest.Digest(h.String()) }

// imageLoad imports a `docker save` or OCI layout tarball (docker load).
// Its body is a raw stream, not JSON, so maxBody does not apply: the store
// extracts it to disk as it arrives and never holds it in memory.
func (s *Server) imageLoad(w http.ResponseWriter, r *http.Request) {
	imgs, err := s.backend.Images().Import(r.Context(), r.Body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ps := newProgressStream(w)
	for _, img := range imgs {
		if len(img.RepoTags) == 0 {
			ps.send(JSONMessage{Stream: "Loaded image ID: " + img.ID + "\n"})
		}
		for _, t := range img.RepoTags {
			ps.send(JSONMessage{Stream: "Loaded image: " + t + "\n"})
		}
		s.backend.Events().Publish(events.Message{Type: moby.ImageEventType, Action: moby.ActionLoad, Actor: moby.Actor{ID: img.ID}})
	}
	if len(imgs) == 0 {
		ps.send(JSONMessage{Stream: "no images in the tarball\n"})
	}
}

// imageSave exports images as a docker save tarball (docker save).
func (s *Server) imageSave(w http.ResponseWriter, r *http.Request) {
	s.export(w, r, r.URL.Query()["names"])
}

func (s *Server) export(w http.ResponseWriter, r *http.Request, names []string) {
	if len(names) == 0 {
		s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("save: name at least one image")))
		return
	}
	// Resolve first, so a missing image is a proper 404 rather than a
	// broken tarball.
	for _, n := range names {
		if _, err := s.backend.Images().Get(r.Context(), n); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	if err := s.backend.Images().Export(r.Context(), w, names...); err != nil {
		s.log.Error("image save failed mid-stream", "names", names, "err", err)
	}
}

// imageUnpack writes an image's root filesystem as a standalone ext4 file
// on the daemon's machine (`berth image unpack`).
func (s *Server) imageUnpack(w http.ResponseWriter, r *http.Request) {
	var req types.UnpackRequest
	if err := decodeBody(w, r, "unpack", &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.backend.Unpack(r.Context(), req.Image, req.Output, req.Size); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// auth checks registry credentials (docker login). The client stores
// them; Berth keeps nothing.
func (s *Server) auth(w http.ResponseWriter, r *http.Request) {
	var ac registry.AuthConfig
	if err := decodeBody(w, r, "login", &ac); err != nil {
		s.writeError(w, r, err)
		return
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password, IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken})
	if err := s.backend.Images().Login(r.Context(), ac.ServerAddress, auth); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, registry.AuthResponse{Status: "Login Succeeded"})
}
