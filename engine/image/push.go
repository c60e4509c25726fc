package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berthvm/berth/engine/errdefs"
)

// The states of a layer in a push, as dockerd writes them in its JSON
// progress stream.
const (
	// Preparing: the push will look at the layer.
	Preparing State = "Preparing"
	// Pushing: Current of Total bytes of the layer were sent.
	Pushing State = "Pushing"
	// Pushed: the registry has the layer.
	Pushed State = "Pushed"
	// LayerExists: the registry had the layer already; nothing sent.
	LayerExists State = "Layer already exists"
)

type pushOptions struct {
	progress func(Event)
	auth     authn.Authenticator
}

// PushOption configures one Push.
type PushOption func(*pushOptions)

// WithPushProgress sets a function called with each layer's progress
// (Preparing, Pushing, then Pushed or Layer already exists). Calls are
// serialized and should return quickly.
func WithPushProgress(f func(Event)) PushOption { return func(o *pushOptions) { o.progress = f } }

// WithPushAuth sets the credentials for this push (for example those of
// the X-Registry-Auth header), instead of asking the store's keychain.
func WithPushAuth(a authn.Authenticator) PushOption { return func(o *pushOptions) { o.auth = a } }

// PushResult says what Push sent.
type PushResult struct {
	// Ref is the reference pushed, as the docker CLI shows it.
	Ref string
	// Tag is the tag pushed ("" for a push by digest).
	Tag string
	// Digest and Size are those of the manifest the registry now has
	// under Ref: the stored manifest, byte for byte, so a pull of Ref
	// gets the same digest.
	Digest v1.Hash
	Size   int64
}

// Push sends the stored image ref names to the registry ref names. It:
//
//   - parses ref the docker way and finds the stored image it names (an
//     unknown one is errdefs.ErrNotFound, "No such image: REF"), keeping
//     its blobs in the store until the push ends;
//   - resolves credentials (WithPushAuth, else the store's keychain);
//   - uploads the layers the registry lacks and then the config (a few at
//     a time, retrying transient failures), reporting each layer, and
//     puts the stored manifest under ref's tag (or digest);
//   - records repo@digest among the image's RepoDigests, as dockerd does.
//
// Registry errors carry errdefs classes and name the registry: an
// unreachable one is errdefs.ErrUnavailable, refused credentials
// errdefs.ErrUnauthorized.
func (s *Store) Push(ctx context.Context, ref string, opts ...PushOption) (*PushResult, error) {
	o := pushOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	r, err := ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	canon := canonical(r)
	img, release, err := s.Checkout(ctx, canon)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, noSuchImage(ref)
		}
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	defer release()
	res, err := s.push(ctx, r, img, o)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", FamiliarName(canon), classifyPush(err, r))
	}
	res.Ref = FamiliarName(canon)
	return res, nil
}

func (s *Store) push(ctx context.Context, r name.Reference, img v1.Image, o pushOptions) (*PushResult, error) {
	auth := o.auth
	if auth == nil {
		a, err := s.opt.keychain.Resolve(r.Context())
		if err != nil {
			return nil, fmt.Errorf("resolve credentials for %s: %w", r.Context().RegistryStr(), err)
		}
		auth = a
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("read layers: %w", err)
	}
	pr := &pushReporter{progress: o.progress}
	wrapped := make([]v1.Layer, len(layers))
	for i, l := range layers {
		d, err := layerDescriptor(l)
		if err != nil {
			return nil, err
		}
		pr.emit(newEvent(d, Preparing, 0))
		wrapped[i] = &reportingLayer{Layer: l, desc: d, pr: pr}
	}
	err = remote.Write(r, &reportingImage{Image: img, layers: wrapped},
		remote.WithContext(ctx),
		remote.WithAuth(auth),
		remote.WithTransport(schemeGuard{inner: s.opt.transport}),
		remote.WithJobs(s.opt.jobs),
		remote.WithRetryBackoff(remote.Backoff{Duration: s.opt.backoff, Factor: 2, Jitter: 0.1, Steps: s.opt.attempts}),
	)
	if err != nil {
		return nil, err
	}
	// Layers remote.Write never read were in the registry already.
	for _, l := range wrapped {
		rl := l.(*reportingLayer)
		if !rl.opened.Load() {
			pr.emit(newEvent(rl.desc, LayerExists, rl.desc.Size))
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	res := &PushResult{Digest: digest, Size: int64(len(raw))}
	if t, ok := r.(name.Tag); ok {
		res.Tag = t.TagStr()
	}
	if err := s.addDigestRef(digest, canonicalRepo(r.Context())+"@"+digest.String()); err != nil {
		return nil, err
	}
	return res, nil
}

// addDigestRef records digestRef among the RepoDigests of the image whose
// manifest is digest (if it is still stored).
func (s *Store) addDigestRef(digest v1.Hash, digestRef string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.db.Images {
		if r.Manifest.Digest != digest || slices.Contains(r.Digests, digestRef) {
			continue
		}
		r.Digests = append(r.Digests, digestRef)
		sort.Strings(r.Digests)
		if err := s.saveLocked(); err != nil {
			return fmt.Errorf("record %s: %w", digestRef, err)
		}
	}
	return nil
}

func layerDescriptor(l v1.Layer) (v1.Descriptor, error) {
	d, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("layer digest: %w", err)
	}
	n, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("layer %s size: %w", d, err)
	}
	return v1.Descriptor{Digest: d, Size: n}, nil
}

// pushReporter serializes a push's progress calls.
type pushReporter struct {
	mu       sync.Mutex
	progress func(Event)
}

func (p *pushReporter) emit(e Event) {
	if p.progress == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.progress(e)
}

// reportingImage is a stored image whose layers report their upload.
type reportingImage struct {
	v1.Image
	layers []v1.Layer
}

func (i *reportingImage) Layers() ([]v1.Layer, error) { return i.layers, nil }

func (i *reportingImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	for _, l := range i.layers {
		if l.(*reportingLayer).desc.Digest == h {
			return l, nil
		}
	}
	return i.Image.LayerByDigest(h)
}

// reportingLayer reports the bytes remote.Write reads from a layer:
// Pushing as they go, Pushed at the end. remote.Write reads only the
// layers the registry lacks.
type reportingLayer struct {
	v1.Layer
	desc   v1.Descriptor
	pr     *pushReporter
	opened atomic.Bool
}

func (l *reportingLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	l.opened.Store(true)
	l.pr.emit(newEvent(l.desc, Pushing, 0))
	return &reportingReader{ReadCloser: rc, l: l}, nil
}

type reportingReader struct {
	io.ReadCloser
	l    *reportingLayer
	n    int64
	last time.Time
	done bool
}

func (r *reportingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n += int64(n)
	if errors.Is(err, io.EOF) {
		r.finish()
	} else if now := time.Now(); n > 0 && now.Sub(r.last) >= 100*time.Millisecond {
		r.last = now
		r.l.pr.emit(newEvent(r.l.desc, Pushing, r.n))
	}
	return n, err
}

// Close reports the layer pushed if all of it was read (a client may
// stop at the length it knows without reading EOF).
func (r *reportingReader) Close() error {
	r.finish()
	return r.ReadCloser.Close()
}

func (r *reportingReader) finish() {
	if !r.done && r.n == r.l.desc.Size {
		r.done = true
		r.l.pr.emit(newEvent(r.l.desc, Pushed, r.n))
	}
}

// classifyPush is classify for a push: refused credentials are "push
// access denied" (with what to do); the rest is as for a pull.
func classifyPush(err error, ref name.Reference) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		codes := map[transport.ErrorCode]bool{}
		for _, d := range terr.Errors {
			codes[d.Code] = true
		}
		if terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden ||
			codes[transport.UnauthorizedErrorCode] || codes[transport.DeniedErrorCode] {
			return errdefs.Unauthorized(fmt.Errorf("push access denied for %s: log in to %s first (docker login %s): %w",
				FamiliarName(canonicalRepo(ref.Context())), ref.Context().RegistryStr(), ref.Context().RegistryStr(), err))
		}
		if terr.StatusCode == http.StatusNotFound {
			return errdefs.NotFound(fmt.Errorf("registry %s: %w", ref.Context().RegistryStr(), err))
		}
	}
	return classify(err, ref)
}
