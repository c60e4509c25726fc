package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/ctxio"
)

// dockerSaveEntry is one entry of a docker save tarball's manifest.json.
type dockerSaveEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Export writes the images refsOrIDs name (each as Get resolves it) to w
// as one tarball in the format of docker save (manifest.json) that is at
// the same time an OCI image layout (oci-layout, index.json, blobs/), as
// dockerd 25 and later write it. An image named by a tag is saved with
// that tag; one named by ID or digest without a tag. The images' blobs
// stay in the store until Export returns, even if the images are removed
// meanwhile; ctx stops it between blobs and inside each.
func (s *Store) Export(ctx context.Context, w io.Writer, refsOrIDs ...string) error {
	if len(refsOrIDs) == 0 {
		return errdefs.InvalidArgument(errors.New("save: no image named"))
	}
	items, release, err := s.exportItems(refsOrIDs)
	if err != nil {
		return err
	}
	defer release()

	ew := &exportWriter{s: s, tw: tar.NewWriter(w), written: map[v1.Hash]bool{}}
	var entries []dockerSaveEntry
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, it := range items {
		e, descs, err := ew.writeImage(ctx, it)
		if err != nil {
			return fmt.Errorf("save %s: %w", it.rec.ID, err)
		}
		entries = append(entries, e)
		idx.Manifests = append(idx.Manifests, descs...)
	}
	if err := ew.finish(entries, idx); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	for _, it := range items {
		if len(it.tags) == 0 {
			s.notify(Change{Action: ActionSave, ID: it.rec.ID})
		}
		for _, t := range it.tags {
			s.notify(Change{Action: ActionSave, ID: it.rec.ID, Ref: FamiliarName(t)})
		}
	}
	return nil
}

// exportItem is one image Export writes, with the tags it is saved under
// (canonical; those it was named by).
type exportItem struct {
	rec  record
	tags []string
}

// exportItems resolves the images refsOrIDs name, in order and each once,
// and leases their blobs so that no removal collects them while they are
// written out; release ends the lease.
func (s *Store) exportItems(refsOrIDs []string) (items []*exportItem, release func(), err error) {
	byID := map[string]*exportItem{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, arg := range refsOrIDs {
		r, matched, err := s.lookupLocked(arg)
		if err != nil {
			return nil, nil, err
		}
		it := byID[r.ID]
		if it == nil {
			it = &exportItem{rec: *r}
			byID[r.ID] = it
			items = append(items, it)
		}
		if matched != "" && slices.Contains(r.Tags, matched) && !slices.Contains(it.tags, matched) {
			it.tags = append(it.tags, matched)
		}
	}
	var hs []v1.Hash
	for _, it := range items {
		hs = append(hs, it.rec.Manifest.Digest)
		if raw, err := s.readBlob(it.rec.Manifest.Digest); err == nil {
			if m, err := v1.ParseManifest(bytes.NewReader(raw)); err == nil {
				hs = append(append(hs, m.Config.Digest), descDigests(m.Layers)...)
			}
		}
	}
	return items, s.leaseLocked(hs...), nil
}

// exportWriter writes the tarball of Export: each blob once, then the
// layout's and docker save's index files.
type exportWriter struct {
	s       *Store
	tw      *tar.Writer
	written map[v1.Hash]bool
}

// writeImage writes the blobs of one image and returns its manifest.json
// entry and its index.json descriptors (one per tag, or one untagged).
func (ew *exportWriter) writeImage(ctx context.Context, it *exportItem) (dockerSaveEntry, []v1.Descriptor, error) {
	raw, err := ew.s.readBlob(it.rec.Manifest.Digest)
	if err != nil {
		return dockerSaveEntry{}, nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return dockerSaveEntry{}, nil, err
	}
	for _, h := range append([]v1.Hash{it.rec.Manifest.Digest, m.Config.Digest}, descDigests(m.Layers)...) {
		if err := ew.addBlob(ctx, h); err != nil {
			return dockerSaveEntry{}, nil, err
		}
	}
	e := dockerSaveEntry{Config: "blobs/sha256/" + m.Config.Digest.Hex, RepoTags: []string{}}
	for _, l := range m.Layers {
		e.Layers = append(e.Layers, "blobs/sha256/"+l.Digest.Hex)
	}
	if len(it.tags) == 0 {
		return e, []v1.Descriptor{it.rec.Manifest}, nil
	}
	var descs []v1.Descriptor
	for _, t := range it.tags {
		e.RepoTags = append(e.RepoTags, FamiliarName(t))
		d := it.rec.Manifest
		_, tag := splitRepo(t)
		d.Annotations = map[string]string{"io.containerd.image.name": t, "org.opencontainers.image.ref.name": tag}
		descs = append(descs, d)
	}
	return e, descs, nil
}

// addBlob writes the stored blob h as blobs/sha256/<hex>, unless written.
func (ew *exportWriter) addBlob(ctx context.Context, h v1.Hash) error {
	if ew.written[h] {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(ew.s.blobPath(h))
	if err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	if err := ew.tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + h.Hex, Mode: 0o644, Size: fi.Size(), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if _, err := ctxio.Copy(ctx, ew.tw, f); err != nil {
		return err
	}
	ew.written[h] = true
	return nil
}

// addFile writes a small file of the tarball.
func (ew *exportWriter) addFile(name string, data []byte) error {
	if err := ew.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	_, err := ew.tw.Write(data)
	return err
}

// finish writes oci-layout, index.json and manifest.json and closes the
// tarball.
func (ew *exportWriter) finish(entries []dockerSaveEntry, idx v1.IndexManifest) error {
	mj, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	ij, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {"index.json", ij}, {"manifest.json", mj}} {
		if err := ew.addFile(f.name, f.data); err != nil {
			return err
		}
	}
	return ew.tw.Close()
}

func descDigests(ds []v1.Descriptor) []v1.Hash {
	out := make([]v1.Hash, len(ds))
	for i, d := range ds {
		out[i] = d.Digest
	}
	return out
}

// importTree is an extracted tarball: regular files under dir, symlinks
// remembered (never created), so nothing can point outside dir.
type importTree struct {
	dir   string
	links map[string]string // clean relative name → clean relative target
}

// open opens the file name in the tree, following the tarball's symlinks
// (old docker save tarballs link repeated layers).
func (t *importTree) open(name string) (*os.File, error) {
	p := path.Clean(strings.TrimPrefix(name, "./"))
	for i := 0; i < 16; i++ {
		target, ok := t.links[p]
		if !ok {
			break
		}
		p = path.Clean(path.Join(path.Dir(p), target))
	}
	if p == ".." || strings.HasPrefix(p, "../") || path.IsAbs(p) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("%q points outside the archive", name))
	}
	f, err := os.Open(filepath.Join(t.dir, filepath.FromSlash(p)))
	if err != nil {
		return nil, archiveMemberErr(name, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errdefs.InvalidArgument(fmt.Errorf("%q is not a file of the archive", name))
	}
	return f, nil
}

// archiveMemberErr describes a failure to open the member name of an
// extracted archive without the path of the extraction directory, which
// is the store's business.
func archiveMemberErr(name string, err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return errdefs.InvalidArgument(fmt.Errorf("%q is not in the archive", name))
	}
	var perr *os.PathError
	if errors.As(err, &perr) {
		err = perr.Err
	}
	return fmt.Errorf("archive member %q: %w", name, err)
}

func (t *importTree) read(name string) ([]byte, error) {
	f, err := t.open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func (t *importTree) exists(name string) bool {
	f, err := t.open(name)
	if err == nil {
		f.Close()
	}
	return err == nil
}

// decompress returns r's content, decompressed when it starts with the
// magic number of gzip, bzip2, xz or zstd, as docker load accepts them;
// anything else is returned as it is (a plain tar). close releases the
// decompressor.
func decompress(r io.Reader) (out io.Reader, close func(), err error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(6)
	nop := func() {}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, errdefs.InvalidArgument(fmt.Errorf("read gzip-compressed archive: %w", err))
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), nop, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, errdefs.InvalidArgument(fmt.Errorf("read xz-compressed archive: %w", err))
		}
		return xr, nop, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, errdefs.InvalidArgument(fmt.Errorf("read zstd-compressed archive: %w", err))
		}
		return zr, zr.Close, nil
	}
	return br, nop, nil
}

// memberName returns the clean relative name of a tar member, or an
// errdefs.ErrInvalidArgument naming it when it is absolute or climbs out
// of the archive ("../x", "a/../../x"): docker load refuses such archives.
func memberName(name string) (string, error) {
	n := path.Clean(strings.TrimPrefix(name, "./"))
	if path.IsAbs(name) || n == ".." || strings.HasPrefix(n, "../") {
		return "", errdefs.InvalidArgument(fmt.Errorf("archive member %q is outside the archive (absolute or climbing out with ..): archive refused", name))
	}
	return n, nil
}

// extract unpacks r (a tar, or one compressed with gzip, bzip2, xz or
// zstd) into a fresh directory under the store (same file system as
// blobs/); only regular files are written, symlinks and hard links are
// remembered. A member outside the archive, or one that clashes with
// another (a file where a directory is needed), refuses the whole archive
// with an errdefs.ErrInvalidArgument that names the member; nothing of it
// stays on disk.
func (s *Store) extract(ctx context.Context, r io.Reader) (*importTree, error) {
	dir, err := os.MkdirTemp(filepath.Join(s.root, ingestDir), ".import-")
	if err != nil {
		return nil, diskErr(err, s.root)
	}
	t := &importTree{dir: dir, links: map[string]string{}}
	if err := s.extractInto(ctx, t, r); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return t, nil
}

func (s *Store) extractInto(ctx context.Context, t *importTree, r io.Reader) error {
	plain, closeDecompressor, err := decompress(ctxio.NewReader(ctx, r))
	if err != nil {
		return err
	}
	defer closeDecompressor()
	tr := tar.NewReader(plain)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errdefs.InvalidArgument(fmt.Errorf("read archive: %w", err))
		}
		n, err := memberName(h.Name)
		if err != nil {
			return err
		}
		if n == "." {
			continue
		}
		switch h.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			target := h.Linkname
			if h.Typeflag == tar.TypeLink {
				target = path.Join(strings.Repeat("../", strings.Count(n, "/")), h.Linkname)
			}
			t.links[n] = target
		case tar.TypeReg:
			if err := s.extractFile(ctx, t.dir, n, tr); err != nil {
				return err
			}
		}
	}
}

// extractFile writes the regular member n of the archive under dir. Its
// errors name the member, never dir: dir is the store's business.
func (s *Store) extractFile(ctx context.Context, dir, n string, r io.Reader) error {
	p := filepath.Join(dir, filepath.FromSlash(n))
	memberErr := func(err error) error {
		var perr *os.PathError
		if errors.As(err, &perr) {
			err = perr.Err // the path is the store's, not the user's
		}
		switch {
		case isENOSPC(err):
			return diskErr(err, s.root)
		case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.EEXIST):
			return errdefs.InvalidArgument(fmt.Errorf("archive member %q clashes with an earlier member (a file and a directory of the same name): %w", n, err))
		}
		return errdefs.InvalidArgument(fmt.Errorf("archive member %q: %w", n, err))
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return memberErr(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return memberErr(err)
	}
	_, err = ctxio.Copy(ctx, f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return memberErr(err)
	}
	return nil
}

// importCandidate is one image found in a tarball.
type importCandidate struct {
	manifest []byte
	desc     v1.Descriptor
	blobs    map[v1.Hash]string // digest → file in the tree
	tags     []string           // canonical
}

// Import loads the images of a tarball read from r: a docker save tarball
// (manifest.json, old or new style) or an OCI image layout tarball
// (oci-layout, index.json, blobs/). No network is used. Each blob is
// verified against its digest as it enters the store; a layer of a docker
// save tarball that lacks a registry manifest is stored as it is (gzip or
// plain tar) and checked against the config's diff IDs. Tags come from
// manifest.json's RepoTags or from the index's io.containerd.image.name
// (or a full-reference org.opencontainers.image.ref.name) annotations; a
// multi-arch index resolves to the store's default platform. It returns
// the images loaded, each with RepoTags set to the tags the archive gave
// it (not those it already had in the store), so that the caller reports
// only what was loaded.
//
// An archive with a member outside it (absolute, or climbing out with
// ..), a malformed member, or a reference outside the registry grammar is
// refused with an errdefs.ErrInvalidArgument that names it, and the store
// is left unchanged. The archive may be compressed with gzip, bzip2, xz or
// zstd. Reading, hashing and verifying stop when ctx ends.
func (s *Store) Import(ctx context.Context, r io.Reader) ([]*Image, error) {
	t, err := s.extract(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer os.RemoveAll(t.dir)
	var cands []*importCandidate
	switch {
	case t.exists("index.json") && t.exists("oci-layout"):
		cands, err = s.ociCandidates(t)
		if err == nil && t.exists("manifest.json") {
			err = addDockerTags(t, cands)
		}
	case t.exists("manifest.json"):
		cands, err = dockerSaveCandidates(ctx, t)
	default:
		err = errdefs.InvalidArgument(errors.New("not a docker save or OCI layout tarball (no manifest.json, no index.json)"))
	}
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var out []*Image
	for _, c := range cands {
		img, err := s.importOne(ctx, t, c)
		if err != nil {
			s.collectGarbage() // blobs of this image that no image took
			return out, fmt.Errorf("load: %w", err)
		}
		// Report what the archive loaded: its tags, not the others the
		// image may already have had in the store.
		img.RepoTags = nil
		for _, t := range c.tags {
			img.RepoTags = append(img.RepoTags, FamiliarName(t))
		}
		out = append(out, img)
		if len(c.tags) == 0 {
			s.notify(Change{Action: ActionLoad, ID: img.ID})
		}
		for _, t := range c.tags {
			s.notify(Change{Action: ActionLoad, ID: img.ID, Ref: FamiliarName(t)})
		}
	}
	return out, nil
}

func (s *Store) importOne(ctx context.Context, t *importTree, c *importCandidate) (*Image, error) {
	m, err := v1.ParseManifest(bytes.NewReader(c.manifest))
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("manifest %s: %w", c.desc.Digest, err))
	}
	all := append([]v1.Descriptor{m.Config}, m.Layers...)
	hs := append([]v1.Hash{c.desc.Digest}, descDigests(all)...)
	defer s.lease(hs...)()
	for _, d := range all {
		file, ok := c.blobs[d.Digest]
		if !ok {
			file = "blobs/" + d.Digest.Algorithm + "/" + d.Digest.Hex
		}
		if err := s.ingestFile(ctx, t, file, d); err != nil {
			return nil, err
		}
	}
	cfgRaw, err := s.readBlob(m.Config.Digest)
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("config %s: %w", m.Config.Digest, err))
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("image %s: config lists %d layers, manifest %d", m.Config.Digest, len(cfg.RootFS.DiffIDs), len(m.Layers)))
	}
	if err := s.putBlob(ctx, c.desc, c.manifest); err != nil {
		return nil, err
	}
	if cfg.OS != "" {
		c.desc.Platform = &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	}
	size := c.desc.Size + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	tags := c.tags
	if len(tags) == 0 {
		tags = []string{""}
	}
	var rec *record
	for _, tag := range tags {
		if rec, _, err = s.commit(c.desc, cfg, m.Config.Digest, size, tag, ""); err != nil {
			return nil, err
		}
	}
	return s.imageFromRecord(rec)
}

// ingestFile stores the blob d from a file of the tree: the file is
// hashed and, when its digest and size match, fsynced and renamed into
// blobs/ (the tree is on the store's file system, so nothing is copied).
func (s *Store) ingestFile(ctx context.Context, t *importTree, file string, d v1.Descriptor) error {
	unlock, err := s.blobLocks.lock(ctx, d.Digest.String())
	if err != nil {
		return err
	}
	defer unlock()
	if s.hasBlob(d.Digest, d.Size) {
		return nil
	}
	f, err := t.open(file)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("blob %s missing from the tarball: %w", d.Digest, err))
	}
	defer f.Close()
	h, n, err := v1.SHA256(ctxio.NewReader(ctx, f))
	if err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if h != d.Digest || n != d.Size {
		return errdefs.InvalidArgument(fmt.Errorf("blob %s: %w: the tarball's %s holds %d bytes hashing to %s; blob discarded", d.Digest, errDigestMismatch, file, n, h))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, diskErr(err, s.root))
	}
	if err := os.Rename(f.Name(), s.blobPath(d.Digest)); err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	syncDir(filepath.Join(s.root, blobsDir))
	return nil
}

// ociCandidates reads an OCI layout's index.json.
func (s *Store) ociCandidates(t *importTree) ([]*importCandidate, error) {
	raw, err := t.read("index.json")
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("index.json: %w", err))
	}
	byDigest := map[v1.Hash]*importCandidate{}
	var out []*importCandidate
	for _, d := range idx.Manifests {
		md, mraw, err := resolveLayoutManifest(t, d, s.opt.platform)
		if err != nil {
			return nil, err
		}
		c := byDigest[md.Digest]
		if c == nil {
			c = &importCandidate{manifest: mraw, desc: md, blobs: map[v1.Hash]string{}}
			byDigest[md.Digest] = c
			out = append(out, c)
		}
		tag, err := annotationRef(d.Annotations)
		if err != nil {
			return nil, err
		}
		if tag != "" && !slices.Contains(c.tags, tag) {
			c.tags = append(c.tags, tag)
		}
	}
	return out, nil
}

// resolveLayoutManifest reads the manifest d names, descending into a
// nested index for platform.
func resolveLayoutManifest(t *importTree, d v1.Descriptor, platform v1.Platform) (v1.Descriptor, []byte, error) {
	for depth := 0; depth < 4; depth++ {
		raw, err := t.read("blobs/" + d.Digest.Algorithm + "/" + d.Digest.Hex)
		if err != nil {
			return d, nil, errdefs.InvalidArgument(fmt.Errorf("manifest %s missing from the tarball: %w", d.Digest, err))
		}
		if h, _, err := v1.SHA256(bytes.NewReader(raw)); err != nil || h != d.Digest {
			return d, nil, errdefs.InvalidArgument(fmt.Errorf("manifest %s: %w: content hashes to %s", d.Digest, errDigestMismatch, h))
		}
		mt := d.MediaType
		if mt == "" {
			var probe struct{ MediaType types.MediaType }
			json.Unmarshal(raw, &probe)
			mt = probe.MediaType
		}
		if !mt.IsIndex() {
			out := v1.Descriptor{MediaType: mt, Digest: d.Digest, Size: int64(len(raw))}
			if out.MediaType == "" {
				out.MediaType = types.OCIManifestSchema1
			}
			return out, raw, nil
		}
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return d, nil, errdefs.InvalidArgument(fmt.Errorf("index %s: %w", d.Digest, err))
		}
		var have []string
		found := false
		for _, c := range im.Manifests {
			if c.Platform == nil || c.Platform.OS == "unknown" {
				continue
			}
			have = append(have, platformString(*c.Platform))
			if platformMatches(*c.Platform, platform) && t.exists("blobs/"+c.Digest.Algorithm+"/"+c.Digest.Hex) {
				d, found = c, true
				break
			}
		}
		if !found {
			return d, nil, errdefs.NotFound(fmt.Errorf("no matching manifest for %s in index %s (available: %s)", platformString(platform), d.Digest, strings.Join(have, ", ")))
		}
	}
	return d, nil, errdefs.InvalidArgument(fmt.Errorf("index %s: nested too deep", d.Digest))
}

// annotationRef returns the canonical tag an index entry names, or "".
// A name that is not a valid reference refuses the archive.
func annotationRef(a map[string]string) (string, error) {
	for _, k := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
		v := a[k]
		if v == "" || (!strings.Contains(v, ":") && !strings.Contains(v, "/")) {
			continue // a bare tag like "latest" names no repository
		}
		r, err := ParseReference(v)
		if err != nil {
			return "", fmt.Errorf("index.json annotation %s: %w", k, err)
		}
		if _, ok := r.(name.Tag); ok {
			return canonical(r), nil
		}
	}
	return "", nil
}

// addDockerTags adds manifest.json's RepoTags to OCI candidates with the
// same config.
func addDockerTags(t *importTree, cands []*importCandidate) error {
	entries, err := readDockerManifest(t)
	if err != nil {
		return err
	}
	for _, c := range cands {
		m, err := v1.ParseManifest(bytes.NewReader(c.manifest))
		if err != nil {
			return errdefs.InvalidArgument(err)
		}
		for _, e := range entries {
			base := strings.TrimPrefix(strings.TrimSuffix(path.Base(e.Config), ".json"), "sha256:")
			if base != m.Config.Digest.Hex {
				continue
			}
			for _, tag := range e.RepoTags {
				r, err := ParseReference(tag)
				if err != nil {
					return fmt.Errorf("manifest.json RepoTags: %w", err)
				}
				if ct := canonical(r); !slices.Contains(c.tags, ct) {
					c.tags = append(c.tags, ct)
				}
			}
		}
	}
	return nil
}

func readDockerManifest(t *importTree) ([]dockerSaveEntry, error) {
	raw, err := t.read("manifest.json")
	if err != nil {
		return nil, err
	}
	var entries []dockerSaveEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("manifest.json: %w", err))
	}
	return entries, nil
}

// dockerSaveCandidates builds a manifest for each entry of a docker save
// tarball without an OCI layout: the config as it is, and each layer file
// as it is (gzip or plain tar), checked against the config's diff IDs.
func dockerSaveCandidates(ctx context.Context, t *importTree) ([]*importCandidate, error) {
	entries, err := readDockerManifest(t)
	if err != nil {
		return nil, err
	}
	var out []*importCandidate
	for _, e := range entries {
		cfgRaw, err := t.read(e.Config)
		if err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("config %s: %w", e.Config, err))
		}
		cfgDigest, _, _ := v1.SHA256(bytes.NewReader(cfgRaw))
		cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
		if err != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("config %s: %w", e.Config, err))
		}
		if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
			return nil, errdefs.InvalidArgument(fmt.Errorf("config %s lists %d layers, manifest.json %d", e.Config, len(cfg.RootFS.DiffIDs), len(e.Layers)))
		}
		c := &importCandidate{blobs: map[v1.Hash]string{cfgDigest: e.Config}}
		m := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cfgDigest, Size: int64(len(cfgRaw))},
		}
		for i, l := range e.Layers {
			d, err := layerFileDescriptor(ctx, t, l, cfg.RootFS.DiffIDs[i])
			if err != nil {
				return nil, err
			}
			c.blobs[d.Digest] = l
			m.Layers = append(m.Layers, d)
		}
		c.manifest, err = json.Marshal(m)
		if err != nil {
			return nil, err
		}
		h, n, _ := v1.SHA256(bytes.NewReader(c.manifest))
		c.desc = v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: n}
		for _, tag := range e.RepoTags {
			r, err := ParseReference(tag)
			if err != nil {
				return nil, fmt.Errorf("manifest.json RepoTags: %w", err)
			}
			c.tags = append(c.tags, canonical(r))
		}
		sort.Strings(c.tags)
		out = append(out, c)
	}
	return out, nil
}

// layerFileDescriptor hashes a layer file of a docker save tarball, and
// its uncompressed content, which must match diffID.
func layerFileDescriptor(ctx context.Context, t *importTree, file string, diffID v1.Hash) (v1.Descriptor, error) {
	f, err := t.open(file)
	if err != nil {
		return v1.Descriptor{}, errdefs.InvalidArgument(fmt.Errorf("layer %s: %w", file, err))
	}
	defer f.Close()
	digest, size, err := v1.SHA256(ctxio.NewReader(ctx, f))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("layer %s: %w", file, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return v1.Descriptor{}, err
	}
	mt := types.OCIUncompressedLayer
	uncompressed := digest
	var magic [2]byte
	if n, _ := io.ReadFull(f, magic[:]); n == 2 && magic == [2]byte{0x1f, 0x8b} {
		mt = types.OCILayer
		f.Seek(0, io.SeekStart)
		zr, err := gzip.NewReader(f)
		if err != nil {
			return v1.Descriptor{}, errdefs.InvalidArgument(fmt.Errorf("layer %s: %w", file, err))
		}
		if uncompressed, _, err = v1.SHA256(ctxio.NewReader(ctx, zr)); err != nil {
			if ctx.Err() != nil {
				return v1.Descriptor{}, ctx.Err()
			}
			return v1.Descriptor{}, errdefs.InvalidArgument(fmt.Errorf("layer %s: %w", file, err))
		}
	}
	if uncompressed != diffID {
		return v1.Descriptor{}, errdefs.InvalidArgument(fmt.Errorf("layer %s: %w: content is %s, the config says %s", file, errDigestMismatch, uncompressed, diffID))
	}
	return v1.Descriptor{MediaType: mt, Digest: digest, Size: size}, nil
}
