package image

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"

	"github.com/berthvm/berth/engine/errdefs"
)

type pullOptions struct {
	platform *v1.Platform
	progress func(Event)
	auth     authn.Authenticator
}

// PullOption configures one Pull.
type PullOption func(*pullOptions)

// WithPlatform picks the variant of a multi-arch image to pull (default:
// the store's default platform, linux/<host arch>).
func WithPlatform(p v1.Platform) PullOption { return func(o *pullOptions) { o.platform = &p } }

// WithProgress sets a function called with each layer's progress. Calls
// are serialized (never two at once) and should return quickly.
func WithProgress(f func(Event)) PullOption { return func(o *pullOptions) { o.progress = f } }

// WithAuth sets the credentials for this pull (for example those of the
// X-Registry-Auth header), instead of asking the store's keychain.
func WithAuth(a authn.Authenticator) PullOption { return func(o *pullOptions) { o.auth = a } }

// PullResult says what Pull stored.
type PullResult struct {
	// Image is the stored image.
	Image *Image
	// Ref is the reference pulled, as the docker CLI shows it
	// ("alpine:latest", "alpine@sha256:…").
	Ref string
	// Digest is the digest the reference resolved to at the registry (of
	// the multi-arch index, or of the manifest): dockerd's "Digest: …".
	Digest v1.Hash
	// Updated is false when the store already had the image under this
	// reference ("Image is up to date"), true otherwise ("Downloaded newer
	// image").
	Updated bool
}

// Pull fetches the image ref names from its registry into the store. It:
//
//   - parses ref the docker way (Docker Hub and library/ and :latest by
//     default);
//   - resolves credentials (WithAuth, else the store's keychain) and
//     fetches the manifest, retrying transient failures;
//   - resolves a multi-arch index to the requested platform (the error
//     lists the platforms there are when none fits);
//   - fetches the config and then the layers (a few at a time), skipping
//     blobs already stored, resuming partial downloads with Range
//     requests, verifying every digest while the bytes stream in;
//   - stores the manifest and then records ref (and repo@digest) as
//     pointing at the image.
//
// A cancelled ctx leaves only complete, verified blobs visible; what was
// fetched is reused by the next pull.
func (s *Store) Pull(ctx context.Context, ref string, opts ...PullOption) (*PullResult, error) {
	o := pullOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	r, err := ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	p := &puller{s: s, o: o, ref: r, canon: canonical(r), explicitPlatform: o.platform != nil}
	if p.o.platform == nil {
		p.o.platform = &s.opt.platform
	}
	res, err := p.pull(ctx)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", p.canon, classify(err, r))
	}
	return res, nil
}

// puller is the state of one Pull.
type puller struct {
	s     *Store
	o     pullOptions
	ref   name.Reference
	canon string
	// explicitPlatform: the caller asked for a platform, so a
	// single-platform image of another platform is refused (the default
	// platform only chooses within an index, as dockerd).
	explicitPlatform bool

	auth     authn.Authenticator
	rt       http.RoundTripper // scheme guard + retries for manifests
	clientMu sync.Mutex
	client   *http.Client // authenticated, for blobs; see blobClient

	emitMu sync.Mutex
}

func (p *puller) emit(e Event) {
	if p.o.progress == nil {
		return
	}
	p.emitMu.Lock()
	defer p.emitMu.Unlock()
	p.o.progress(e)
}

func (p *puller) pull(ctx context.Context) (*PullResult, error) {
	p.auth = p.o.auth
	if p.auth == nil {
		a, err := p.s.opt.keychain.Resolve(p.ref.Context())
		if err != nil {
			return nil, fmt.Errorf("resolve credentials for %s: %w", p.ref.Context().RegistryStr(), err)
		}
		p.auth = a
	}
	p.rt = schemeGuard{inner: p.s.opt.transport}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(p.auth),
		remote.WithTransport(p.rt),
		remote.WithRetryBackoff(remote.Backoff{Duration: p.s.opt.backoff, Factor: 2, Jitter: 0.1, Steps: p.s.opt.attempts}),
	}
	top, mdesc, raw, err := p.resolveManifest(ropts)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", mdesc.Digest, err)
	}
	hs := []v1.Hash{mdesc.Digest, m.Config.Digest}
	for _, l := range m.Layers {
		hs = append(hs, l.Digest)
	}
	defer p.s.lease(hs...)()

	if _, err := p.fetch(ctx, m.Config, false); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfgRaw, err := p.s.readBlob(m.Config.Digest)
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, fmt.Errorf("parse config %s: %w", m.Config.Digest, err)
	}
	if cfg.OS != "" {
		mdesc.Platform = &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		if p.explicitPlatform && !platformMatches(*mdesc.Platform, *p.o.platform) {
			return nil, errdefs.NotFound(fmt.Errorf("image with reference %s was found but does not match the specified platform: wanted %s, actual: %s",
				FamiliarName(p.canon), platformString(*p.o.platform), platformString(*mdesc.Platform)))
		}
	}
	downloaded, err := p.fetchLayers(ctx, m.Layers)
	if err != nil {
		return nil, err
	}
	if err := p.s.putBlob(ctx, v1.Descriptor{Digest: mdesc.Digest, Size: mdesc.Size}, raw); err != nil {
		return nil, fmt.Errorf("store manifest: %w", err)
	}

	size := mdesc.Size + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	repo := canonicalRepo(p.ref.Context())
	tag := ""
	if _, ok := p.ref.(name.Tag); ok {
		tag = p.canon
	}
	rec, changed, err := p.s.commit(mdesc, cfg, m.Config.Digest, size, tag, repo+"@"+top.Digest.String())
	if err != nil {
		return nil, err
	}
	img, err := p.s.imageFromRecord(rec)
	if err != nil {
		return nil, err
	}
	p.s.notify(Change{Action: ActionPull, ID: img.ID, Ref: FamiliarName(p.canon)})
	return &PullResult{Image: img, Ref: FamiliarName(p.canon), Digest: top.Digest, Updated: changed || downloaded}, nil
}

// resolveManifest fetches what the reference names (top: an index or a
// manifest) and the manifest for the wanted platform: its descriptor
// (size and media type as fetched) and its bytes, verified against its
// digest.
func (p *puller) resolveManifest(ropts []remote.Option) (top *remote.Descriptor, mdesc v1.Descriptor, raw []byte, err error) {
	top, err = remote.Get(p.ref, ropts...)
	if err != nil {
		return nil, mdesc, nil, err
	}
	switch {
	case top.MediaType.IsIndex():
		child, err := p.pickPlatform(top)
		if err != nil {
			return nil, mdesc, nil, err
		}
		d, err := remote.Get(p.ref.Context().Digest(child.Digest.String()), ropts...)
		if err != nil {
			return nil, mdesc, nil, err
		}
		mdesc, raw = child, d.Manifest
		mdesc.MediaType = d.MediaType
	case top.MediaType.IsImage():
		mdesc, raw = top.Descriptor, top.Manifest
	default:
		return nil, mdesc, nil, errdefs.NotImplemented(fmt.Errorf("unsupported manifest media type %q", top.MediaType))
	}
	mdesc.Size = int64(len(raw))
	mdesc.Annotations = nil
	if h, _, err := v1.SHA256(bytes.NewReader(raw)); err != nil || h != mdesc.Digest {
		return nil, mdesc, nil, fmt.Errorf("manifest %s: %w: content hashes to %s", mdesc.Digest, errDigestMismatch, h)
	}
	return top, mdesc, raw, nil
}

// pickPlatform chooses the entry of an index for the wanted platform.
func (p *puller) pickPlatform(top *remote.Descriptor) (v1.Descriptor, error) {
	idx, err := top.ImageIndex()
	if err != nil {
		return v1.Descriptor{}, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("parse index %s: %w", top.Digest, err)
	}
	want := *p.o.platform
	var have []string
	for _, d := range im.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" || !d.MediaType.IsImage() {
			continue // attestations and nested indexes
		}
		have = append(have, platformString(*d.Platform))
		if platformMatches(*d.Platform, want) {
			return d, nil
		}
	}
	return v1.Descriptor{}, errdefs.NotFound(fmt.Errorf("no matching manifest for %s in the manifest list entries (available: %s)",
		platformString(want), strings.Join(have, ", ")))
}

// platformMatches reports whether have satisfies want: same OS and
// architecture, and the same variant when want names one (arm64's "v8" is
// its default variant).
func platformMatches(have, want v1.Platform) bool {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	if want.Variant == "" {
		return true
	}
	norm := func(p v1.Platform) string {
		if p.Architecture == "arm64" && p.Variant == "" {
			return "v8"
		}
		return p.Variant
	}
	return norm(have) == norm(want)
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// fetchLayers downloads the layers not yet stored, a few at a time, and
// reports whether it fetched any.
func (p *puller) fetchLayers(ctx context.Context, layers []v1.Descriptor) (bool, error) {
	var todo []v1.Descriptor
	for _, l := range layers {
		if p.s.hasBlob(l.Digest, l.Size) {
			p.emit(newEvent(l, AlreadyExists, l.Size))
			continue
		}
		p.emit(newEvent(l, PullingFSLayer, 0))
		todo = append(todo, l)
	}
	for i, l := range todo {
		if i >= p.s.opt.jobs {
			p.emit(newEvent(l, Waiting, 0))
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.s.opt.jobs)
	var mu sync.Mutex
	fetched := false
	for _, l := range todo {
		g.Go(func() error {
			existed, err := p.fetch(gctx, l, true)
			if err != nil {
				return fmt.Errorf("layer %s: %w", l.Digest, err)
			}
			if existed {
				// Another pull stored it while this one waited.
				p.emit(newEvent(l, AlreadyExists, l.Size))
				return nil
			}
			mu.Lock()
			fetched = true
			mu.Unlock()
			p.emit(newEvent(l, DownloadComplete, l.Size))
			p.emit(newEvent(l, PullComplete, l.Size))
			return nil
		})
	}
	return fetched, g.Wait()
}

// fetch stores one blob from the registry: under the digest's lock, with
// retries, resuming a partial download. report says whether to send
// progress events.
func (p *puller) fetch(ctx context.Context, d v1.Descriptor, report bool) (existed bool, err error) {
	unlock, err := p.s.blobLocks.lock(ctx, d.Digest.String())
	if err != nil {
		return false, err
	}
	defer unlock()
	var last time.Time
	progress := func(n int64) {
		if !report {
			return
		}
		if n == d.Size {
			p.emit(newEvent(d, Verifying, n))
			return
		}
		if now := time.Now(); now.Sub(last) >= 100*time.Millisecond {
			last = now
			p.emit(newEvent(d, Downloading, n))
		}
	}
	delay := p.s.opt.backoff
	for attempt := 1; ; attempt++ {
		existed, err := p.s.ingest(ctx, d, p.blobSource(d.Digest), progress)
		if err == nil {
			return existed, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if attempt >= p.s.opt.attempts || !retryable(err) {
			return false, err
		}
		if report {
			e := newEvent(d, Retrying, 0)
			e.Err = err
			p.emit(e)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return false, ctx.Err()
		}
		delay *= 2
	}
}

// blobSource opens GET /v2/<repo>/blobs/<digest> from offset with a Range
// request; a registry that ignores Range answers 200 and the download
// starts over.
func (p *puller) blobSource(h v1.Hash) blobSource {
	repo := p.ref.Context()
	u := url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/blobs/%s", repo.RepositoryStr(), h)}
	return func(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
		resp, err := p.get(ctx, u.String(), offset)
		if err != nil {
			return nil, 0, err
		}
		if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0 {
			resp.Body.Close()
			if resp, err = p.get(ctx, u.String(), 0); err != nil {
				return nil, 0, err
			}
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return resp.Body, 0, nil
		case http.StatusPartialContent:
			start, ok := rangeStart(resp.Header.Get("Content-Range"))
			if !ok {
				resp.Body.Close()
				return nil, 0, fmt.Errorf("GET %s: bad Content-Range %q", u.String(), resp.Header.Get("Content-Range"))
			}
			return resp.Body, start, nil
		}
		defer resp.Body.Close()
		return nil, 0, transport.CheckError(resp, http.StatusOK, http.StatusPartialContent)
	}
}

// blobClient returns the HTTP client for blob requests, authenticated
// for pulls from the repository; it is made (one registry ping and, for
// token auth, one token) on first use, so an up-to-date pull makes none.
func (p *puller) blobClient(ctx context.Context) (*http.Client, error) {
	p.clientMu.Lock()
	defer p.clientMu.Unlock()
	if p.client != nil {
		return p.client, nil
	}
	tr, err := transport.NewWithContext(ctx, p.ref.Context().Registry, p.auth, p.rt, []string{p.ref.Context().Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	p.client = &http.Client{Transport: tr}
	return p.client, nil
}

func (p *puller) get(ctx context.Context, u string, offset int64) (*http.Response, error) {
	client, err := p.blobClient(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	return client.Do(req)
}

// rangeStart parses the first byte of "bytes START-END/TOTAL".
func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	startStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(startStr, 10, 64)
	return n, err == nil
}

// retryable reports whether a failed blob download may succeed if tried
// again: network trouble, a body cut short, 5xx/429/408, or a digest
// mismatch that may come from a stale partial download.
func retryable(err error) bool {
	if errors.Is(err, errResumedMismatch) {
		return true
	}
	if errors.Is(err, errDigestMismatch) || isENOSPC(err) || isTLSErr(err) || isSchemeMismatch(err) {
		return false
	}
	if errors.Is(err, errTruncated) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) {
		return true
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.Temporary() || terr.StatusCode >= 500 || terr.StatusCode == http.StatusTooManyRequests || terr.StatusCode == http.StatusRequestTimeout
	}
	return isNetErr(err)
}

// isTLSErr reports whether err is a certificate the client does not trust;
// trying again does not help.
func isTLSErr(err error) bool {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var he x509.HostnameError
	var tv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &he) || errors.As(err, &tv)
}

// isSchemeMismatch reports whether err is a plain-HTTP answer to an HTTPS
// request: http.ErrSchemeMismatch, or the TLS record error net/http makes
// it from when the error did not pass through an http.Client.
func isSchemeMismatch(err error) bool {
	var rh tls.RecordHeaderError
	return errors.Is(err, http.ErrSchemeMismatch) ||
		(errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/")
}

// isNetErr reports whether err comes from the network (dial, DNS, a
// connection reset or timed out) rather than, say, the local disk.
func isNetErr(err error) bool {
	var oerr *net.OpError
	var derr *net.DNSError
	var uerr *url.Error
	return errors.As(err, &oerr) || errors.As(err, &derr) || errors.As(err, &uerr) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// classify attaches an errdefs class to a registry error and says in
// words what went wrong. Errors already classed pass unchanged.
func classify(err error, ref name.Reference) error {
	for _, c := range []error{errdefs.ErrNotFound, errdefs.ErrInvalidArgument, errdefs.ErrUnauthorized, errdefs.ErrUnavailable, errdefs.ErrConflict, errdefs.ErrNotImplemented} {
		if errors.Is(err, c) {
			return err
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	host := ref.Context().RegistryStr()
	var terr *transport.Error
	if errors.As(err, &terr) {
		codes := map[transport.ErrorCode]bool{}
		for _, d := range terr.Errors {
			codes[d.Code] = true
		}
		switch {
		case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden ||
			codes[transport.UnauthorizedErrorCode] || codes[transport.DeniedErrorCode]:
			return errdefs.Unauthorized(fmt.Errorf("pull access denied for %s, repository does not exist or may require 'docker login': %w", FamiliarName(canonicalRepo(ref.Context())), err))
		case terr.StatusCode == http.StatusNotFound || codes[transport.ManifestUnknownErrorCode] || codes[transport.NameUnknownErrorCode]:
			return errdefs.NotFound(fmt.Errorf("manifest unknown: manifest for %s not found: %w", FamiliarName(canonical(ref)), err))
		case terr.StatusCode >= 500 || terr.StatusCode == http.StatusTooManyRequests:
			return errdefs.Unavailable(fmt.Errorf("registry %s: %w", host, err))
		}
		return err
	}
	if isTLSErr(err) {
		return errdefs.Unavailable(fmt.Errorf("registry %s: TLS certificate not trusted: %w", host, err))
	}
	if isSchemeMismatch(err) {
		return errdefs.Unavailable(fmt.Errorf("registry %s speaks plain HTTP, not HTTPS; Berth uses plain HTTP only for loopback registries: %w", host, err))
	}
	if isNetErr(err) {
		return errdefs.Unavailable(fmt.Errorf("registry %s unreachable: %w", host, err))
	}
	return err
}

// schemeGuard lets plain HTTP through only to loopback registries;
// otherwise it upgrades the request to HTTPS. (go-containerregistry would
// speak plain HTTP to RFC 1918 and .local hosts too; dockerd does not.)
type schemeGuard struct {
	inner http.RoundTripper
}

func (g schemeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !isLoopbackHost(req.URL.Hostname()) {
		req = req.Clone(req.Context())
		req.URL.Scheme = "https"
	}
	return g.inner.RoundTrip(req)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
