// Package image is Berth's image store: it pulls images from registries
// with go-containerregistry, keeps their blobs content-addressed in an OCI
// image layout shared by all images, and answers the questions the Docker
// Engine API asks about them (list, inspect, tag, remove, prune, save,
// load).
//
// A Store is opened on a directory (usually $BERTH_HOME/images):
//
//	s, err := image.Open(dir)
//	res, err := s.Pull(ctx, "alpine:3.20", image.WithProgress(func(e image.Event) { ... }))
//	img, err := s.Image(ctx, res.Image.ID) // a v1.Image for the rootfs builder
//
// Image IDs are Docker's: "sha256:" and the hex digest of the image's
// config blob. References are stored in full
// ("docker.io/library/alpine:latest") and shown the way the docker CLI
// shows them ("alpine:latest").
//
// On disk (see blobs.go): oci-layout, index.json (derived, so the
// directory is an OCI image layout other tools can read),
// repositories.json (Berth's references, written atomically), blobs/sha256
// (complete, verified blobs only) and ingest/ (partial downloads, resumed
// with HTTP Range requests). A blob enters blobs/ only by rename after its
// size and digest were checked and the file fsynced, so a crash, a
// cancelled pull or a full disk never leaves a half-written blob visible.
// One pull at a time writes a given digest; a second pull of the same
// image waits for it and reuses the blob. Blobs that no image references
// are deleted when an image is, and by Prune, except those an operation in
// flight still needs.
//
// Every error a user can cause carries an errdefs class (errors.Is with
// errdefs.ErrNotFound, ErrInvalidArgument, ErrConflict, ErrUnauthorized,
// ErrUnavailable), so the API server can choose the HTTP status.
package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
)

const (
	dbFile      = "repositories.json"
	dbVersion   = 1
	staleIngest = 24 * time.Hour
)

// Store is an image store on one directory. Its methods are safe for
// concurrent use; Open refuses a second Store on the same directory.
type Store struct {
	root string
	opt  options
	lock *os.File // flock held while the Store is open

	mu     sync.Mutex // guards db, leases, and blob deletion
	db     *database
	leases map[v1.Hash]int // blobs an operation in flight needs; GC keeps them

	blobLocks keyedLock // one writer per digest
}

type options struct {
	keychain  authn.Keychain
	transport http.RoundTripper // a clone of remote.DefaultTransport
	platform  v1.Platform       // what a multi-arch image resolves to: linux/<host arch>
	inUse     func(id string) bool
	onRemove  []func(id string)
	onChange  []func(Change)
	attempts  int
	backoff   time.Duration
	jobs      int // layers one pull downloads at once (3, as dockerd)
}

// Option configures a Store at Open.
type Option func(*options)

// WithKeychain sets where credentials for registries come from. The
// default is authn.DefaultKeychain (~/.docker/config.json, $DOCKER_CONFIG,
// and the credential helpers it names).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithInUse sets the hook Remove and Prune ask whether a container uses
// the image id ("sha256:…"); an image in use is not deleted.
func WithInUse(f func(id string) bool) Option { return func(o *options) { o.inUse = f } }

// WithRemoveHook adds a function called with the ID of every image the
// store deletes (not merely untags), after its blobs are gone — for
// example so that the rootfs cache can drop its ext4 file.
func WithRemoveHook(f func(id string)) Option {
	return func(o *options) { o.onRemove = append(o.onRemove, f) }
}

// WithChangeHook adds a function called after each change to the store
// (pull, tag, untag, delete, load, save), for Docker's /events stream.
// It is called synchronously, outside the store's locks.
func WithChangeHook(f func(Change)) Option {
	return func(o *options) { o.onChange = append(o.onChange, f) }
}

// Action names a change to the store; the values are the actions of
// Docker's image events.
type Action string

// The actions a Change reports.
const (
	ActionPull   Action = "pull"
	ActionTag    Action = "tag"
	ActionUntag  Action = "untag"
	ActionDelete Action = "delete"
	ActionLoad   Action = "load"
	ActionSave   Action = "save"
)

// Change is one change to the store, as WithChangeHook reports it.
type Change struct {
	Action Action
	// ID is the image's ID ("sha256:…").
	ID string
	// Ref is the reference concerned as docker shows it ("alpine:latest";
	// the tag added or removed, the reference pulled, loaded or saved), or
	// "" when there is none.
	Ref string
}

// notify calls the change hooks.
func (s *Store) notify(cs ...Change) {
	for _, c := range cs {
		for _, f := range s.opt.onChange {
			f(c)
		}
	}
}

// announceRemoval reports what Remove or Prune did to the image id: the
// change hooks for each item, then the remove hooks if it was deleted.
func (s *Store) announceRemoval(id string, items []DeleteItem) {
	deleted := false
	for _, it := range items {
		if it.Untagged != "" {
			s.notify(Change{Action: ActionUntag, ID: id, Ref: it.Untagged})
		}
		if it.Deleted != "" {
			s.notify(Change{Action: ActionDelete, ID: id})
			deleted = true
		}
	}
	if deleted {
		for _, f := range s.opt.onRemove {
			f(id)
		}
	}
}

// WithRetry sets how often a failed registry request (network error, 5xx,
// 429, a blob cut short) is tried in all, and the delay before the first
// retry, which doubles each time (default 5 attempts, 500ms).
func WithRetry(attempts int, initialDelay time.Duration) Option {
	return func(o *options) { o.attempts, o.backoff = max(attempts, 1), initialDelay }
}

// Open opens the image store in dir, creating it if needed. It:
//
//   - creates the OCI layout skeleton (oci-layout, blobs/sha256, ingest)
//     with directories only the owner can use (0700; an existing store
//     with looser modes is tightened);
//   - takes an exclusive lock on dir/lock (a second Open of the same
//     directory, in this process or another, is errdefs.ErrConflict until
//     Close), so everything in dir is this Store's;
//   - loads the reference database;
//   - removes what a process killed mid-write left: temporary files of
//     atomic writes, extracted archives of an unfinished load, partial
//     downloads older than a day (younger ones are kept to resume), and
//     blobs no image references (stored by a load or pull that never
//     recorded its image).
func Open(dir string, opts ...Option) (*Store, error) {
	o := options{
		keychain: authn.DefaultKeychain,
		platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		attempts: 5,
		backoff:  500 * time.Millisecond,
		jobs:     3,
	}
	for _, opt := range opts {
		opt(&o)
	}
	o.transport = remote.DefaultTransport.(*http.Transport).Clone()
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", dir, err)
	}
	s := &Store{root: root, opt: o, leases: map[v1.Hash]int{}}
	for _, d := range []string{".", "blobs", blobsDir, ingestDir} {
		if err := home.MkdirPrivate(filepath.Join(root, d)); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
	}
	if s.lock, err = lockDir(filepath.Join(root, "lock")); err != nil {
		return nil, fmt.Errorf("open image store %s: %w", root, err)
	}
	opened := false
	defer func() {
		if !opened {
			s.lock.Close()
		}
	}()
	if _, err := os.Stat(filepath.Join(root, "oci-layout")); errors.Is(err, os.ErrNotExist) {
		if err := writeFileAtomic(filepath.Join(root, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return nil, fmt.Errorf("open image store %s: %w", root, err)
		}
	}
	s.cleanStale()
	db, err := loadDB(filepath.Join(root, dbFile))
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", root, err)
	}
	s.db = db
	s.collectGarbage() // blobs of a load or pull that a dead process never recorded
	if _, err := os.Stat(filepath.Join(root, "index.json")); errors.Is(err, os.ErrNotExist) {
		s.mu.Lock()
		err = s.saveLocked()
		s.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("open image store %s: %w", root, err)
		}
	}
	opened = true
	return s, nil
}

// Close releases the store's directory lock. Operations in flight should
// have returned; the Store must not be used afterwards.
func (s *Store) Close() error {
	return s.lock.Close()
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.root }

// cleanStale removes temporary files of atomic writes and old partial
// downloads left by a process that died.
func (s *Store) cleanStale() {
	for _, d := range []string{s.root, filepath.Join(s.root, blobsDir)} {
		tmps, _ := filepath.Glob(filepath.Join(d, ".*.tmp-*"))
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(s.root, ingestDir))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".import-") {
			os.RemoveAll(filepath.Join(s.root, ingestDir, e.Name()))
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleIngest {
			os.Remove(filepath.Join(s.root, ingestDir, e.Name()))
		}
	}
}

// database is the reference database, repositories.json.
type database struct {
	Version int                `json:"version"`
	Images  map[string]*record `json:"images"` // by image ID
}

// record is one stored image.
type record struct {
	ID       string            `json:"id"`
	Manifest v1.Descriptor     `json:"manifest"` // the platform manifest; Platform set when known
	Tags     []string          `json:"tags,omitempty"`
	Digests  []string          `json:"digests,omitempty"`
	Created  time.Time         `json:"created"`
	Size     int64             `json:"size"`
	Labels   map[string]string `json:"labels,omitempty"`
	Added    time.Time         `json:"added"`
}

func loadDB(path string) (*database, error) {
	db := &database{Version: dbVersion, Images: map[string]*record{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return db, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, db); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if db.Version != dbVersion {
		return nil, fmt.Errorf("read %s: unknown version %d", path, db.Version)
	}
	if db.Images == nil {
		db.Images = map[string]*record{}
	}
	return db, nil
}

// saveLocked writes repositories.json and the derived OCI index.json
// atomically. s.mu is held.
func (s *Store) saveLocked() error {
	data, err := json.MarshalIndent(s.db, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.root, dbFile), data); err != nil {
		return fmt.Errorf("save image references: %w", err)
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, r := range s.sortedLocked() {
		d := r.Manifest
		if len(r.Tags) == 0 {
			idx.Manifests = append(idx.Manifests, d)
		}
		for _, t := range r.Tags {
			d := d
			_, tag := splitRepo(t)
			d.Annotations = map[string]string{
				"io.containerd.image.name":          t,
				"org.opencontainers.image.ref.name": tag,
			}
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	data, err = json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.root, "index.json"), data); err != nil {
		return fmt.Errorf("save image index: %w", err)
	}
	return nil
}

// sortedLocked returns the records newest first.
func (s *Store) sortedLocked() []*record {
	recs := make([]*record, 0, len(s.db.Images))
	for _, r := range s.db.Images {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool {
		if !recs[i].Created.Equal(recs[j].Created) {
			return recs[i].Created.After(recs[j].Created)
		}
		return recs[i].ID < recs[j].ID
	})
	return recs
}

// Image describes one stored image with the fields Docker's
// GET /images/json and /images/{name}/json report.
type Image struct {
	// ID is "sha256:" and the hex digest of the config blob.
	ID string
	// RepoTags are the image's tags as the docker CLI shows them
	// ("alpine:latest", "localhost:5000/x:y"); empty for a dangling image.
	RepoTags []string
	// RepoDigests are "repo@sha256:…" references by which the image was
	// pulled (the digest of the manifest or of the multi-arch index).
	RepoDigests []string
	// Created is the creation time recorded in the image config.
	Created time.Time
	// Added is when this store first got the image (pulled, loaded or
	// imported); zero for images stored before it was recorded.
	Added time.Time
	// Size is the bytes the image's blobs (layers compressed, config,
	// manifest) take in the store; blobs shared with other images count
	// for each.
	Size int64
	// Labels are the config's labels.
	Labels map[string]string
	// Manifest describes the platform manifest (digest, size, media type).
	Manifest v1.Descriptor
	// Platform is the image's os/architecture[/variant].
	Platform v1.Platform
	// Config is the image's config: Entrypoint, Cmd, Env, WorkingDir,
	// User, Labels, history, rootfs diff IDs.
	Config *v1.ConfigFile
}

// ShortID returns the 12 hex digits docker shows for an image ID.
func ShortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// imageFromRecord builds the public view of r, reading its config.
func (s *Store) imageFromRecord(r *record) (*Image, error) {
	img := &Image{
		ID:       r.ID,
		Created:  r.Created,
		Added:    r.Added,
		Size:     r.Size,
		Labels:   maps(r.Labels),
		Manifest: r.Manifest,
	}
	for _, t := range r.Tags {
		img.RepoTags = append(img.RepoTags, FamiliarName(t))
	}
	for _, d := range r.Digests {
		img.RepoDigests = append(img.RepoDigests, FamiliarName(d))
	}
	h, err := v1.NewHash(r.ID)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r.ID, err)
	}
	data, err := s.readBlob(h)
	if err != nil {
		return nil, fmt.Errorf("image %s: read config: %w", r.ID, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("image %s: parse config: %w", r.ID, err)
	}
	img.Config = cfg
	img.Platform = v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion}
	return img, nil
}

func maps(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// List returns every stored image, newest first, dangling ones included.
func (s *Store) List(ctx context.Context) ([]*Image, error) {
	s.mu.Lock()
	recs := s.sortedLocked()
	snap := make([]record, len(recs))
	for i, r := range recs {
		snap[i] = *r
	}
	s.mu.Unlock()
	out := make([]*Image, 0, len(snap))
	for i := range snap {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := s.imageFromRecord(&snap[i])
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since the snapshot
		}
		if err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		out = append(out, img)
	}
	return out, nil
}

// Get returns the image that refOrID names: a reference ("alpine",
// "alpine:3.20", "alpine@sha256:…"), a full ID ("sha256:<64 hex>"), bare
// hex, or a unique prefix of an ID. An unknown image is
// errdefs.ErrNotFound with Docker's message "No such image: REF".
func (s *Store) Get(ctx context.Context, refOrID string) (*Image, error) {
	s.mu.Lock()
	r, _, err := s.lookupLocked(refOrID)
	var snap record
	if err == nil {
		snap = *r
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	img, err := s.imageFromRecord(&snap)
	if errors.Is(err, os.ErrNotExist) {
		return nil, noSuchImage(refOrID) // removed since the lookup
	}
	return img, err
}

// Image returns the stored image refOrID (as Get resolves it) as a
// go-containerregistry v1.Image whose Layers read from the store, for the
// rootfs builder (Layers, then each layer's Uncompressed). Its blobs are
// read lazily: if the image may be removed while they are read, use
// Checkout.
func (s *Store) Image(ctx context.Context, refOrID string) (v1.Image, error) {
	s.mu.Lock()
	r, _, err := s.lookupLocked(refOrID)
	var h v1.Hash
	if err == nil {
		h = r.Manifest.Digest
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	img, err := layout.Path(s.root).Image(h)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", refOrID, err)
	}
	return img, nil
}

// Checkout is Image with a guarantee: the image's blobs stay in the store
// until release is called, even if the image is removed meanwhile (they
// are collected by the next removal or Prune after that). Use it around
// work that reads the layers, such as building a root filesystem.
func (s *Store) Checkout(ctx context.Context, refOrID string) (img v1.Image, release func(), err error) {
	s.mu.Lock()
	r, _, err := s.lookupLocked(refOrID)
	if err != nil {
		s.mu.Unlock()
		return nil, nil, err
	}
	hs := []v1.Hash{r.Manifest.Digest}
	raw, err := s.readBlob(r.Manifest.Digest)
	if err != nil {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("image %s: %w", refOrID, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("image %s: %w", refOrID, err)
	}
	hs = append(append(hs, m.Config.Digest), descDigests(m.Layers)...)
	unlease := s.leaseLocked(hs...)
	s.mu.Unlock()
	img, err = layout.Path(s.root).Image(r.Manifest.Digest)
	if err != nil {
		unlease()
		return nil, nil, fmt.Errorf("image %s: %w", refOrID, err)
	}
	var once sync.Once
	return img, func() { once.Do(unlease) }, nil
}

// noSuchImage is Docker's 404 for an unknown image; docker-py keys on it.
func noSuchImage(ref string) error {
	return errdefs.NotFound(fmt.Errorf("No such image: %s", ref))
}

// lookupLocked finds the record refOrID names. matched is the canonical
// reference that matched ("" when matched by ID). s.mu is held.
func (s *Store) lookupLocked(refOrID string) (r *record, matched string, err error) {
	id := strings.TrimPrefix(refOrID, "sha256:")
	looksHex := len(id) > 0 && len(id) <= 64 && strings.Trim(id, "0123456789abcdef") == ""
	if looksHex && (len(id) == 64 || strings.HasPrefix(refOrID, "sha256:")) {
		if r, err := s.byIDPrefixLocked(refOrID, id); r != nil || err != nil {
			return r, "", err
		}
		return nil, "", noSuchImage(refOrID)
	}
	if ref, perr := ParseReference(refOrID); perr == nil {
		c := canonical(ref)
		for _, r := range s.db.Images {
			if slices.Contains(r.Tags, c) || slices.Contains(r.Digests, c) {
				return r, c, nil
			}
		}
		// A digest reference also names the manifest itself, whatever
		// repository it came from under this repository name.
		if d, ok := ref.(interface{ DigestStr() string }); ok {
			repo, _ := splitRepo(c)
			for _, r := range s.db.Images {
				if r.Manifest.Digest.String() != d.DigestStr() {
					continue
				}
				for _, t := range append(slices.Clone(r.Tags), r.Digests...) {
					if rp, _ := splitRepo(t); rp == repo {
						return r, "", nil
					}
				}
			}
		}
	} else if !looksHex {
		return nil, "", perr
	}
	if looksHex {
		if r, err := s.byIDPrefixLocked(refOrID, id); r != nil || err != nil {
			return r, "", err
		}
	}
	return nil, "", noSuchImage(refOrID)
}

func (s *Store) byIDPrefixLocked(refOrID, prefix string) (*record, error) {
	var found *record
	for id, r := range s.db.Images {
		if strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), prefix) {
			if found != nil {
				return nil, errdefs.InvalidArgument(fmt.Errorf("image ID prefix %s is ambiguous: it matches %s and %s", refOrID, ShortID(found.ID), ShortID(r.ID)))
			}
			found = r
		}
	}
	return found, nil
}

// Tag makes target ("name[:tag]") refer to the image source names (a
// reference or ID, as Get resolves it). A tag that referred to another
// image moves; that image stays, dangling if it has no tag left.
func (s *Store) Tag(ctx context.Context, source, target string) error {
	ref, err := ParseReference(target)
	if err != nil {
		return fmt.Errorf("tag %s %s: %w", source, target, err)
	}
	if _, ok := ref.(interface{ DigestStr() string }); ok {
		return errdefs.InvalidArgument(fmt.Errorf("tag %s %s: refusing to create a tag with a digest reference", source, target))
	}
	s.mu.Lock()
	r, _, err := s.lookupLocked(source)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.setTagLocked(r, canonical(ref))
	if err := s.saveLocked(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("tag %s %s: %w", source, target, err)
	}
	id := r.ID
	s.mu.Unlock()
	s.notify(Change{Action: ActionTag, ID: id, Ref: FamiliarName(canonical(ref))})
	return nil
}

// setTagLocked points tag at r, taking it from any other image.
func (s *Store) setTagLocked(r *record, tag string) {
	for _, o := range s.db.Images {
		if o != r {
			o.Tags = slices.DeleteFunc(o.Tags, func(t string) bool { return t == tag })
		}
	}
	if !slices.Contains(r.Tags, tag) {
		r.Tags = append(r.Tags, tag)
		sort.Strings(r.Tags)
	}
}

// DeleteItem is one entry of Remove's answer, shaped like Docker's
// DELETE /images/{name} response items.
type DeleteItem struct {
	Untagged string `json:",omitempty"`
	Deleted  string `json:",omitempty"`
}

type removeOptions struct{ force bool }

// RemoveOption configures Remove.
type RemoveOption func(*removeOptions)

// Force makes Remove untag every reference of an image named by ID, and
// untag an image in use (which then stays, dangling, as with docker rmi -f).
func Force() RemoveOption { return func(o *removeOptions) { o.force = true } }

// Remove untags or deletes what refOrID names, with docker rmi's rules:
//
//   - a reference: that tag (or digest reference) is removed; when the
//     image has no tag left, it is deleted with its unshared blobs;
//   - an ID: the image is deleted; an image with more than one tag needs
//     Force;
//   - an image in use (the WithInUse hook) is never deleted: without Force
//     that is errdefs.ErrConflict; with Force its tags go and it stays.
//
// It returns what was untagged and deleted, and calls the remove hooks for
// a deleted image.
func (s *Store) Remove(ctx context.Context, refOrID string, opts ...RemoveOption) ([]DeleteItem, error) {
	var o removeOptions
	for _, opt := range opts {
		opt(&o)
	}
	r, matched, inUse, err := s.lookupInUse(refOrID)
	if err != nil {
		return nil, err
	}
	// s.mu is held from here.
	var items []DeleteItem
	untag := func(ref string) {
		items = append(items, DeleteItem{Untagged: FamiliarName(ref)})
	}
	deleteImage := false
	isMatched := func(t string) bool { return t == matched }
	otherTags := slices.DeleteFunc(slices.Clone(r.Tags), isMatched)
	otherDigests := slices.DeleteFunc(slices.Clone(r.Digests), isMatched)
	untagOnly := matched != "" && (len(otherTags) > 0 || (len(r.Tags) == 0 && len(otherDigests) > 0))
	switch {
	case untagOnly:
		// One of several references: untag only.
		r.Tags, r.Digests = otherTags, otherDigests
		untag(matched)
	default:
		if matched == "" && len(r.Tags) > 1 && !o.force {
			s.mu.Unlock()
			return nil, errdefs.Conflict(fmt.Errorf("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", ShortID(r.ID)))
		}
		if inUse && !o.force {
			s.mu.Unlock()
			if matched != "" {
				repo, _ := splitRepo(matched)
				return nil, errdefs.Conflict(fmt.Errorf("conflict: unable to remove repository reference %q (must force) - image %s is being used by a container", FamiliarName(repo), ShortID(r.ID)))
			}
			return nil, errdefs.Conflict(fmt.Errorf("conflict: unable to delete %s (must be forced) - image is being used by a container", ShortID(r.ID)))
		}
		for _, t := range r.Tags {
			untag(t)
		}
		for _, d := range r.Digests {
			untag(d)
		}
		r.Tags, r.Digests = nil, nil
		if !inUse {
			delete(s.db.Images, r.ID)
			items = append(items, DeleteItem{Deleted: r.ID})
			deleteImage = true
		}
	}
	if err := s.saveLocked(); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("remove %s: %w", refOrID, err)
	}
	if deleteImage {
		s.gcLocked()
	}
	s.mu.Unlock()
	s.announceRemoval(r.ID, items)
	return items, nil
}

// lookupInUse finds the record refOrID names and asks the in-use hook
// about it without holding s.mu (the hook may call back into the store or
// take the container manager's locks). On success it returns with s.mu
// held and the record unchanged since the hook was asked.
func (s *Store) lookupInUse(refOrID string) (r *record, matched string, inUse bool, err error) {
	for range 5 {
		s.mu.Lock()
		r, _, err := s.lookupLocked(refOrID)
		s.mu.Unlock()
		if err != nil {
			return nil, "", false, err
		}
		id := r.ID
		inUse := s.opt.inUse != nil && s.opt.inUse(id)
		s.mu.Lock()
		r, matched, err = s.lookupLocked(refOrID)
		if err != nil {
			s.mu.Unlock()
			return nil, "", false, err
		}
		if r.ID == id {
			return r, matched, inUse, nil
		}
		s.mu.Unlock() // the reference moved meanwhile: ask again
	}
	return nil, "", false, errdefs.Conflict(fmt.Errorf("remove %s: the image it names keeps changing; try again", refOrID))
}

type pruneOptions struct{ all bool }

// PruneOption configures Prune.
type PruneOption func(*pruneOptions)

// PruneAll makes Prune delete every image not in use, not only dangling
// ones (docker image prune -a).
func PruneAll() PruneOption { return func(o *pruneOptions) { o.all = true } }

// PruneReport is what Prune deleted, shaped like Docker's
// POST /images/prune response.
type PruneReport struct {
	ImagesDeleted  []DeleteItem
	SpaceReclaimed uint64
}

// Prune deletes dangling images (no tag) that no container uses, then
// every blob no image references and every partial download no pull is
// using, and reports what it deleted and the bytes freed.
func (s *Store) Prune(ctx context.Context, opts ...PruneOption) (PruneReport, error) {
	var o pruneOptions
	for _, opt := range opts {
		opt(&o)
	}
	var rep PruneReport
	deleted := map[string][]DeleteItem{}
	var order []string
	// Ask the in-use hook without holding s.mu (see lookupInUse).
	s.mu.Lock()
	var ids []string
	for _, r := range s.db.Images {
		ids = append(ids, r.ID)
	}
	s.mu.Unlock()
	inUse := map[string]bool{}
	for _, id := range ids {
		inUse[id] = s.opt.inUse != nil && s.opt.inUse(id)
	}
	s.mu.Lock()
	for _, r := range s.sortedLocked() {
		used, asked := inUse[r.ID]
		if (len(r.Tags) > 0 && !o.all) || used || !asked {
			continue // an image that arrived since is not pruned this time
		}
		var items []DeleteItem
		for _, t := range r.Tags {
			items = append(items, DeleteItem{Untagged: FamiliarName(t)})
		}
		for _, d := range r.Digests {
			items = append(items, DeleteItem{Untagged: FamiliarName(d)})
		}
		items = append(items, DeleteItem{Deleted: r.ID})
		rep.ImagesDeleted = append(rep.ImagesDeleted, items...)
		delete(s.db.Images, r.ID)
		deleted[r.ID] = items
		order = append(order, r.ID)
	}
	if len(deleted) > 0 {
		if err := s.saveLocked(); err != nil {
			s.mu.Unlock()
			return rep, fmt.Errorf("prune images: %w", err)
		}
	}
	rep.SpaceReclaimed = s.gcLocked()
	entries, _ := os.ReadDir(filepath.Join(s.root, ingestDir))
	for _, e := range entries {
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if strings.HasPrefix(e.Name(), ".") || s.leases[h] > 0 {
			continue
		}
		p := filepath.Join(s.root, ingestDir, e.Name())
		if fi, err := os.Stat(p); err == nil && os.Remove(p) == nil {
			rep.SpaceReclaimed += uint64(fi.Size())
		}
	}
	s.mu.Unlock()
	for _, id := range order {
		s.announceRemoval(id, deleted[id])
	}
	return rep, nil
}

// referencedLocked returns every blob a stored image needs.
func (s *Store) referencedLocked() map[v1.Hash]bool {
	keep := map[v1.Hash]bool{}
	for _, r := range s.db.Images {
		keep[r.Manifest.Digest] = true
		data, err := s.readBlob(r.Manifest.Digest)
		if err != nil {
			continue
		}
		m, err := v1.ParseManifest(bytes.NewReader(data))
		if err != nil {
			continue
		}
		keep[m.Config.Digest] = true
		for _, l := range m.Layers {
			keep[l.Digest] = true
		}
	}
	return keep
}

// gcLocked deletes every blob that no image references and no operation
// in flight holds a lease on; it returns the bytes freed.
func (s *Store) gcLocked() uint64 {
	keep := s.referencedLocked()
	entries, err := os.ReadDir(filepath.Join(s.root, blobsDir))
	if err != nil {
		return 0
	}
	var freed uint64
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if keep[h] || s.leases[h] > 0 {
			continue
		}
		p := filepath.Join(s.root, blobsDir, e.Name())
		if fi, err := os.Stat(p); err == nil && os.Remove(p) == nil {
			freed += uint64(fi.Size())
		}
	}
	return freed
}

// collectGarbage deletes every blob no image references and no
// operation in flight needs.
func (s *Store) collectGarbage() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gcLocked()
}

// lease marks blobs as needed by an operation in flight so that GC keeps
// them; the returned function releases the lease.
func (s *Store) lease(hs ...v1.Hash) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leaseLocked(hs...)
}

// leaseLocked is lease with s.mu held; the release function takes s.mu.
func (s *Store) leaseLocked(hs ...v1.Hash) (release func()) {
	for _, h := range hs {
		s.leases[h]++
	}
	return func() {
		s.mu.Lock()
		for _, h := range hs {
			if s.leases[h]--; s.leases[h] <= 0 {
				delete(s.leases, h)
			}
		}
		s.mu.Unlock()
	}
}

// commit records a stored image (manifest, config and layers already in
// blobs/) under tag and digestRef (canonical references; either may be
// ""), merging with an existing record for the same ID. It reports whether
// the image is new to the store or a tag moved to it.
func (s *Store) commit(desc v1.Descriptor, cfg *v1.ConfigFile, configDigest v1.Hash, size int64, tag, digestRef string) (*record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := configDigest.String()
	r := s.db.Images[id]
	changed := false
	if r == nil {
		r = &record{ID: id, Created: cfg.Created.Time, Labels: maps(cfg.Config.Labels), Added: time.Now().UTC()}
		s.db.Images[id] = r
		changed = true
	}
	dirty := changed
	if r.Manifest.Digest != desc.Digest || r.Manifest.MediaType != desc.MediaType || r.Size != size {
		r.Manifest, r.Size, dirty = desc, size, true
	}
	if tag != "" && !slices.Contains(r.Tags, tag) {
		s.setTagLocked(r, tag)
		changed, dirty = true, true
	}
	if digestRef != "" && !slices.Contains(r.Digests, digestRef) {
		r.Digests = append(r.Digests, digestRef)
		sort.Strings(r.Digests)
		dirty = true
	}
	if dirty {
		if err := s.saveLocked(); err != nil {
			return nil, false, err
		}
	}
	cp := *r
	return &cp, changed, nil
}
