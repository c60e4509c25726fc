package image

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berthvm/berth/engine/errdefs"
)

// hubRegistry is how Berth spells Docker Hub in stored references; the
// go-containerregistry name package spells it index.docker.io.
const hubRegistry = "docker.io"

// ParseReference parses a Docker-style image reference ("alpine",
// "alpine:3.20", "docker.io/library/alpine@sha256:…", "localhost:5000/x:y")
// the way the docker CLI does: a missing registry means Docker Hub, a
// missing repository namespace on Hub means library/, and a missing tag
// means latest. A malformed reference is an errdefs.ErrInvalidArgument.
func ParseReference(ref string) (name.Reference, error) {
	if ref == "" {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid reference format: empty image reference"))
	}
	r, err := name.ParseReference(ref, name.WithDefaultRegistry(hubRegistry))
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid reference format %q: %w", ref, err))
	}
	return r, nil
}

// canonicalRepo returns the repository of r as Berth stores it:
// "docker.io/library/alpine", "localhost:5000/x".
func canonicalRepo(r name.Repository) string {
	reg := r.RegistryStr()
	if reg == name.DefaultRegistry || reg == "registry-1.docker.io" {
		reg = hubRegistry
	}
	return reg + "/" + r.RepositoryStr()
}

// canonical returns the full stored spelling of r:
// "docker.io/library/alpine:latest" or "docker.io/library/alpine@sha256:…".
func canonical(r name.Reference) string {
	repo := canonicalRepo(r.Context())
	switch t := r.(type) {
	case name.Digest:
		return repo + "@" + t.DigestStr()
	case name.Tag:
		return repo + ":" + t.TagStr()
	}
	return repo + ":" + r.Identifier()
}

// FamiliarName shortens a canonical reference the way the docker CLI shows
// it: "docker.io/library/alpine:latest" → "alpine:latest",
// "docker.io/user/app:1" → "user/app:1"; others are returned unchanged.
func FamiliarName(ref string) string {
	if rest, ok := strings.CutPrefix(ref, hubRegistry+"/"); ok {
		if short, ok := strings.CutPrefix(rest, "library/"); ok && !strings.Contains(short, "/") {
			return short
		}
		return rest
	}
	return ref
}

// splitRepo splits a canonical tag reference into repository and tag, or
// a canonical digest reference into repository and digest.
func splitRepo(ref string) (repo, id string) {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}
