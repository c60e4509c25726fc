package image

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Registry serves a Store as a read-only OCI distribution registry (the
// image builder's base images, docs/build.md): GET /v2/; GET and HEAD of
// manifests by tag or digest and of blobs by digest. Only what a stored
// image is made of is served (its platform manifest, config and layers);
// multi-arch indexes are not stored, so they are not served. Nothing
// else is answered: no catalog, no tag list, no upload (405). Names and
// references are checked against the distribution grammar before they
// are looked up, and blobs are opened by their verified digest only, so
// no request reaches a path outside the store's blobs. It is an
// http.Handler; whoever serves it decides who can reach it.
type Registry struct {
	s         *Store
	manifests atomic.Int64
	blobs     atomic.Int64
	misses    atomic.Int64
}

// NewRegistry returns the registry view of s.
func NewRegistry(s *Store) *Registry { return &Registry{s: s} }

// RegistryStats counts what a Registry answered.
type RegistryStats struct {
	// Manifests and Blobs are the manifests and blobs served (GET or
	// HEAD); Misses the requests answered with an error.
	Manifests, Blobs, Misses int64
}

// Stats says what r answered so far.
func (r *Registry) Stats() RegistryStats {
	return RegistryStats{Manifests: r.manifests.Load(), Blobs: r.blobs.Load(), Misses: r.misses.Load()}
}

// The distribution grammar of a repository name and a tag, and the one
// digest form the store holds.
var (
	registryNameRE   = regexp.MustCompile(`^` + refPathComponent + `(?:/` + refPathComponent + `)*$`)
	registryTagRE    = regexp.MustCompile(`^` + refTag + `$`)
	registryDigestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// hostPortComponent is a repository's first path component that
	// spells a registry host with its port ("127.0.0.1_5000").
	hostPortComponent = regexp.MustCompile(`^([a-z0-9.-]+)_([0-9]{1,5})$`)
)

// RegistryRepository is the repository under which a Registry serves
// the images of ref's repository: its canonical spelling
// ("docker.io/library/busybox"), a registry port's ":" written "_"
// ("127.0.0.1_5000/busybox"), so that it is a valid repository name
// under another registry's host. A repository it cannot spell so
// (an IPv6 or upper-case host) is "berth/image": by digest, any name
// finds the image.
func RegistryRepository(ref string) (string, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return "", err
	}
	repo := canonicalRepo(r.Context())
	host, path, _ := strings.Cut(repo, "/")
	if h, port, ok := strings.Cut(host, ":"); ok {
		host = h + "_" + port
	}
	if name := host + "/" + path; registryNameRE.MatchString(name) && len(name) <= maxNameLength {
		return name, nil
	}
	return "berth/image", nil
}

// repositoryRef turns a served repository name back into a reference's
// repository (RegistryRepository's inverse).
func repositoryRef(name string) string {
	first, rest, ok := strings.Cut(name, "/")
	if !ok {
		return name
	}
	if m := hostPortComponent.FindStringSubmatch(first); m != nil {
		return m[1] + ":" + m[2] + "/" + rest
	}
	return name
}

// The OCI distribution error codes the registry answers with.
const (
	codeNameInvalid      = "NAME_INVALID"
	codeManifestUnknown  = "MANIFEST_UNKNOWN"
	codeManifestInvalid  = "MANIFEST_INVALID"
	codeBlobUnknown      = "BLOB_UNKNOWN"
	codeDigestInvalid    = "DIGEST_INVALID"
	codeUnsupported      = "UNSUPPORTED"
	distributionVersion  = "registry/2.0"
	headerContentDigest  = "Docker-Content-Digest"
	headerAPIVersion     = "Docker-Distribution-API-Version"
	contentTypeJSON      = "application/json"
	contentTypeOctet     = "application/octet-stream"
	maxRegistryPathBytes = 1024
)

// ServeHTTP answers one registry request.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set(headerAPIVersion, distributionVersion)
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		r.fail(w, req, http.StatusMethodNotAllowed, codeUnsupported, "this registry is read-only: "+req.Method+" is not supported")
		return
	}
	p := req.URL.Path
	if p == "/v2/" || p == "/v2" {
		w.Header().Set("Content-Type", contentTypeJSON)
		w.WriteHeader(http.StatusOK)
		if req.Method == http.MethodGet {
			w.Write([]byte("{}"))
		}
		return
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok || len(p) > maxRegistryPathBytes {
		r.fail(w, req, http.StatusNotFound, codeUnsupported, "not a registry API path")
		return
	}
	if name, ref, ok := cutLast(rest, "/manifests/"); ok {
		r.manifest(w, req, name, ref)
		return
	}
	if name, ref, ok := cutLast(rest, "/blobs/"); ok {
		r.blob(w, req, name, ref)
		return
	}
	r.fail(w, req, http.StatusNotFound, codeUnsupported, "not a path this read-only registry serves (manifests and blobs only)")
}

// cutLast cuts s around the last sep.
func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// manifest serves the platform manifest name:ref or name@ref names.
func (r *Registry) manifest(w http.ResponseWriter, req *http.Request, name, ref string) {
	if !registryNameRE.MatchString(name) || len(name) > maxNameLength {
		r.fail(w, req, http.StatusNotFound, codeNameInvalid, "invalid repository name")
		return
	}
	var desc v1.Descriptor
	var found bool
	switch {
	case registryDigestRE.MatchString(ref):
		h, _ := v1.NewHash(ref)
		desc, found = r.s.manifestByDigest(h)
	case registryTagRE.MatchString(ref):
		desc, found = r.s.manifestByTag(repositoryRef(name) + ":" + ref)
	case strings.Contains(ref, ":"):
		r.fail(w, req, http.StatusBadRequest, codeDigestInvalid, "only sha256 digests are served")
		return
	default:
		r.fail(w, req, http.StatusBadRequest, codeManifestInvalid, "invalid tag")
		return
	}
	if !found {
		r.fail(w, req, http.StatusNotFound, codeManifestUnknown, fmt.Sprintf("manifest unknown: %s is not in Berth's image store", ref))
		return
	}
	data, err := r.s.readBlob(desc.Digest)
	if err != nil {
		r.fail(w, req, http.StatusNotFound, codeManifestUnknown, "manifest unknown: removed from Berth's image store")
		return
	}
	mt := desc.MediaType
	if mt == "" {
		var probe struct {
			MediaType types.MediaType `json:"mediaType"`
		}
		json.Unmarshal(data, &probe)
		mt = probe.MediaType
		if mt == "" {
			mt = types.OCIManifestSchema1
		}
	}
	r.manifests.Add(1)
	w.Header().Set("Content-Type", string(mt))
	w.Header().Set(headerContentDigest, desc.Digest.String())
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		w.Write(data)
	}
}

// blob serves the blob ref, when a stored image is made of it.
func (r *Registry) blob(w http.ResponseWriter, req *http.Request, name, ref string) {
	if !registryNameRE.MatchString(name) || len(name) > maxNameLength {
		r.fail(w, req, http.StatusNotFound, codeNameInvalid, "invalid repository name")
		return
	}
	if !registryDigestRE.MatchString(ref) {
		r.fail(w, req, http.StatusBadRequest, codeDigestInvalid, "a blob is named by its sha256 digest")
		return
	}
	h, _ := v1.NewHash(ref)
	if !r.s.isReferenced(h) {
		r.fail(w, req, http.StatusNotFound, codeBlobUnknown, fmt.Sprintf("blob unknown: %s is not part of an image in Berth's image store", ref))
		return
	}
	// Opened by the digest's hex alone (checked above): the path stays
	// in blobs/. An open file stays readable if the image is removed.
	f, err := os.Open(r.s.blobPath(h))
	if err != nil {
		r.fail(w, req, http.StatusNotFound, codeBlobUnknown, "blob unknown: removed from Berth's image store")
		return
	}
	defer f.Close()
	r.blobs.Add(1)
	w.Header().Set("Content-Type", contentTypeOctet)
	w.Header().Set(headerContentDigest, h.String())
	w.Header().Set("Cache-Control", "max-age=31536000")
	http.ServeContent(w, req, "", time.Time{}, f)
}

// fail answers with the distribution spec's error body.
func (r *Registry) fail(w http.ResponseWriter, req *http.Request, status int, code, msg string) {
	r.misses.Add(1)
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Errors []detail `json:"errors"`
	}{[]detail{{Code: code, Message: msg}}})
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	if req.Method != http.MethodHead {
		w.Write(body)
	}
}

// manifestByDigest is the stored platform manifest h.
func (s *Store) manifestByDigest(h v1.Hash) (v1.Descriptor, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.db.Images {
		if r.Manifest.Digest == h {
			return r.Manifest, true
		}
	}
	return v1.Descriptor{}, false
}

// manifestByTag is the platform manifest of the image stored under ref
// (a repository and a tag).
func (s *Store) manifestByTag(ref string) (v1.Descriptor, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, _, err := s.lookupLocked(ref)
	if err != nil {
		return v1.Descriptor{}, false
	}
	return r.Manifest, true
}

// isReferenced reports whether a stored image is made of the blob h.
func (s *Store) isReferenced(h v1.Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.referencedLocked()[h]
}
