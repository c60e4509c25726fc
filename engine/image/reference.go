package image

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berthvm/berth/engine/errdefs"
)

// hubRegistry is how Berth spells Docker Hub in stored references; the
// go-containerregistry name package spells it index.docker.io.
const hubRegistry = "docker.io"

// The reference grammar of the distribution project (the one dockerd and
// every registry enforce); go-containerregistry's name package alone is
// laxer and accepts "..", "a//b" or "../../etc/passwd" as repositories.
const (
	refPathComponent = `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`
	refDomainLabel   = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	refDomain        = `(?:` + refDomainLabel + `(?:\.` + refDomainLabel + `)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?`
	refTag           = `[\w][\w.-]{0,127}`
	refDigest        = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
)

var referenceRE = regexp.MustCompile(`^(?P<name>(?:` + refDomain + `/)?` + refPathComponent + `(?:/` + refPathComponent + `)*)` +
	`(?::` + refTag + `)?(?:@` + refDigest + `)?$`)

// maxNameLength is the longest repository name (domain included) the
// distribution grammar allows.
const maxNameLength = 255

// validateReference checks ref against the distribution reference grammar:
// an optional registry host[:port], then lowercase path components joined
// by single slashes, each made of [a-z0-9] runs separated by one '.', one
// or two '_', or dashes; then an optional :tag and @digest.
func validateReference(ref string) error {
	m := referenceRE.FindStringSubmatch(ref)
	if m == nil {
		if strings.ToLower(ref) != ref && referenceRE.MatchString(strings.ToLower(ref)) {
			return fmt.Errorf("invalid reference format: repository name in %q must be lowercase", ref)
		}
		return fmt.Errorf("invalid reference format %q: a reference is [registry[:port]/]name[:tag][@digest], each name component lowercase letters and digits separated by '.', '_', '__' or '-', components joined by single '/'", ref)
	}
	if n := len(m[referenceRE.SubexpIndex("name")]); n > maxNameLength {
		return fmt.Errorf("invalid reference format %q: repository name is %d characters, more than %d", ref, n, maxNameLength)
	}
	return nil
}

// ParseReference parses a Docker-style image reference ("alpine",
// "alpine:3.20", "docker.io/library/alpine@sha256:…", "localhost:5000/x:y")
// the way the docker CLI does: a missing registry means Docker Hub, a
// missing repository namespace on Hub means library/, and a missing tag
// means latest. A reference outside the distribution grammar ("..",
// "a//b", "UPPER") is an errdefs.ErrInvalidArgument naming it; every way
// into the store (pull, tag, load) parses its references here.
func ParseReference(ref string) (name.Reference, error) {
	if ref == "" {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid reference format: empty image reference"))
	}
	if err := validateReference(ref); err != nil {
		return nil, errdefs.InvalidArgument(err)
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
