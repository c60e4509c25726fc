// Package rootfs turns OCI image layers into an ext4 root filesystem image,
// keeps one such base image per image manifest in a cache, and gives each
// container a copy-on-write clone of it.
//
// Layers are applied in order with the OCI image-spec semantics: whiteouts
// (.wh.NAME, .wh..wh..opq) hide entries of lower layers only, a directory
// and a file replace each other, hard links may name files of lower
// layers, and paths that pass through symlinked directories are resolved
// inside the image with ".." clamped at its root. Nothing is ever extracted
// to the host filesystem: every entry of a tar, however hostile its names
// or link targets, can only change the image being written.
package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/ext4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	maxSymlinks    = 255
	xattrPAXPrefix = "SCHILY.xattr."
)

// ApplyImage applies the layers of img, lowest first, into w. ggcr
// decompresses each layer (gzip or zstd) as it is read.
func ApplyImage(ctx context.Context, w *ext4.Writer, img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("apply image: list layers: %w", err)
	}
	for i, l := range layers {
		if err := applyImageLayer(ctx, w, i, l); err != nil {
			return err
		}
	}
	return nil
}

func applyImageLayer(ctx context.Context, w *ext4.Writer, i int, l v1.Layer) error {
	d, err := l.Digest()
	if err != nil {
		return fmt.Errorf("apply layer %d: digest: %w", i, err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("apply layer %d (%s): open: %w", i, d, err)
	}
	defer rc.Close()
	if err := ApplyLayer(ctx, w, rc); err != nil {
		return fmt.Errorf("apply layer %d (%s): %w", i, d, err)
	}
	return nil
}

// ApplyLayers applies tar streams, lowest layer first, into w. Each stream
// may be an uncompressed tar or a gzip or zstd compressed one.
func ApplyLayers(ctx context.Context, w *ext4.Writer, layers ...io.Reader) error {
	for i, r := range layers {
		if err := ApplyLayer(ctx, w, r); err != nil {
			return fmt.Errorf("apply layer %d: %w", i, err)
		}
	}
	return nil
}

// ApplyLayer applies one layer, a tar stream that may be gzip or zstd
// compressed (detected from its first bytes), on top of what w holds.
// A malformed tar or corrupt compressed data is an invalid-argument error;
// an error reading r is returned as it is.
func ApplyLayer(ctx context.Context, w *ext4.Writer, r io.Reader) error {
	src := &sourceReader{r: r}
	tr, closer, err := decompress(src)
	if err != nil {
		return err
	}
	defer closer()
	ra := newReadAhead(tr)
	defer ra.Close() // before closer: the goroutine reads tr
	a := &applier{w: w, seen: make(map[string]struct{})}
	t := tar.NewReader(ra)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := t.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			ra.Close() // src is no longer read: its error can be looked at
			if src.err != nil {
				return fmt.Errorf("read layer: %w", src.err)
			}
			return errdefs.InvalidArgument(fmt.Errorf("read tar: %w", err))
		}
		content := &sourceReader{r: t}
		if err := a.entry(ctx, hdr, content); err != nil {
			if content.err != nil { // reading the entry's content failed
				ra.Close()
				if src.err != nil {
					return fmt.Errorf("tar entry %q: read layer: %w", hdr.Name, src.err)
				}
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					err = errdefs.InvalidArgument(err)
				}
			}
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
	}
}

// sourceReader remembers the first error, other than io.EOF, of a
// stream: of the layer's own (to tell a failing source from corrupt
// content) and of an entry's content (to tell a read error from others).
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, errdefs.InvalidArgument(fmt.Errorf("read gzip: %w", err))
		}
		return zr, func() { zr.Close() }, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, errdefs.InvalidArgument(fmt.Errorf("read zstd: %w", err))
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// applier applies one layer.
type applier struct {
	w *ext4.Writer
	// seen holds the resolved paths this layer has put an entry at:
	// whiteouts of the same layer must not remove them.
	seen map[string]struct{}
}

func metadata(hdr *tar.Header) ext4.Metadata {
	md := ext4.Metadata{
		Mode:  uint32(hdr.Mode) & 0o7777,
		UID:   uint32(hdr.Uid),
		GID:   uint32(hdr.Gid),
		Mtime: hdr.ModTime,
		Atime: hdr.AccessTime,
		Ctime: hdr.ChangeTime,
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPAXPrefix)
		if !ok || !ext4.XattrSupported(name) {
			continue
		}
		if md.Xattrs == nil {
			md.Xattrs = make(map[string][]byte)
		}
		md.Xattrs[name] = []byte(v)
	}
	return md
}

func (a *applier) entry(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	clean := path.Clean("/" + hdr.Name)
	base := path.Base(clean)
	if clean == "/" {
		if hdr.Typeflag == tar.TypeDir {
			return a.w.Mkdir(ctx, "/", metadata(hdr))
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(ctx, path.Dir(clean), base)
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil
	}
	parent, err := a.resolve(ctx, path.Dir(clean), true)
	if err != nil {
		return err
	}
	target := path.Join(parent, base)
	md := metadata(hdr)
	a.seen[target] = struct{}{}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.w.Mkdir(ctx, target, md)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeCont:
		return a.w.WriteFile(ctx, target, md, r, hdr.Size)
	case tar.TypeSymlink:
		return a.w.Symlink(ctx, target, hdr.Linkname, md)
	case tar.TypeLink:
		lclean := path.Clean("/" + hdr.Linkname)
		if lclean == "/" {
			return errdefs.InvalidArgument(errors.New("hard link to the root"))
		}
		lparent, err := a.resolve(ctx, path.Dir(lclean), false)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		ltarget := path.Join(lparent, path.Base(lclean))
		if ltarget == target {
			return nil
		}
		return a.w.Link(ctx, target, ltarget)
	case tar.TypeChar:
		return a.w.Mknod(ctx, target, ext4.TypeCharDevice, uint32(hdr.Devmajor), uint32(hdr.Devminor), md)
	case tar.TypeBlock:
		return a.w.Mknod(ctx, target, ext4.TypeBlockDevice, uint32(hdr.Devmajor), uint32(hdr.Devminor), md)
	case tar.TypeFifo:
		return a.w.Mknod(ctx, target, ext4.TypeFIFO, 0, 0, md)
	}
	delete(a.seen, target)
	return errdefs.InvalidArgument(fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag))
}

// whiteout handles a .wh. entry named base in directory dir.
func (a *applier) whiteout(ctx context.Context, dir, base string) error {
	parent, err := a.resolve(ctx, dir, false)
	if errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrInvalidArgument) {
		return nil // no directory there: nothing below to hide
	}
	if err != nil {
		return err
	}
	if base == whiteoutOpaque {
		return a.opaque(ctx, parent)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // other AUFS metadata (.wh..wh.plnk, ...)
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return nil // names no entry of the directory
	}
	target := path.Join(parent, name)
	if _, ok := a.seen[target]; ok {
		return nil // created by this layer, not a lower one
	}
	if err := a.w.Remove(ctx, target); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	return nil
}

// opaque removes the entries of directory dir that lower layers made,
// keeping (and descending into) those this layer made.
func (a *applier) opaque(ctx context.Context, dir string) error {
	names, err := a.w.ReadDir(dir)
	if err != nil {
		if errors.Is(err, errdefs.ErrInvalidArgument) {
			return nil // not a directory: nothing to hide
		}
		return err
	}
	for _, name := range names {
		p := path.Join(dir, name)
		if _, ok := a.seen[p]; !ok {
			if err := a.w.Remove(ctx, p); err != nil {
				return err
			}
			continue
		}
		if info, err := a.w.Lookup(p); err == nil && info.Type == ext4.TypeDir {
			if err := a.opaque(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve returns the path, free of symlinks, that p names inside the
// image: symlinks are followed (absolute ones from the image root) and ".."
// never climbs above the root. With create, missing directories are made
// (mode 0755, root-owned), as container runtimes do for tar entries whose
// parents are not in the layer.
func (a *applier) resolve(ctx context.Context, p string, create bool) (string, error) {
	var cur []string
	queue := splitClean(p)
	links := 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		next := "/" + strings.Join(append(cur, c), "/")
		info, err := a.w.Lookup(next)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			if !create {
				return "", err
			}
			if err := a.w.Mkdir(ctx, next, ext4.Metadata{Mode: 0o755}); err != nil {
				return "", err
			}
			cur = append(cur, c)
		case err != nil:
			return "", err
		case info.Type == ext4.TypeSymlink:
			if links++; links > maxSymlinks {
				return "", errdefs.InvalidArgument(fmt.Errorf("resolve %s: too many levels of symbolic links", p))
			}
			if strings.HasPrefix(info.Target, "/") {
				cur = cur[:0]
			}
			queue = append(strings.Split(info.Target, "/"), queue...)
		case info.Type == ext4.TypeDir:
			cur = append(cur, c)
		default:
			return "", errdefs.InvalidArgument(fmt.Errorf("resolve %s: %s is a %s, not a directory", p, next, info.Type))
		}
	}
	return "/" + strings.Join(cur, "/"), nil
}

func splitClean(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

// UnpackLayers writes a new ext4 image at outPath holding the layers
// applied in order. The image is written under a temporary name in the
// same directory and renamed into place, so outPath never holds a partial
// image.
func UnpackLayers(ctx context.Context, outPath string, layers []io.Reader, opts ...ext4.Option) error {
	return unpack(ctx, outPath, opts, func(w *ext4.Writer) error {
		return ApplyLayers(ctx, w, layers...)
	})
}

// Unpack writes a new ext4 image of img's root filesystem at outPath,
// through a temporary file renamed into place. size is the image size in
// bytes; 0 sizes it to the content plus free space (see ext4.WithMinFree).
func Unpack(ctx context.Context, img v1.Image, outPath string, size int64) error {
	var opts []ext4.Option
	if size > 0 {
		opts = append(opts, ext4.WithSize(size))
	}
	return unpack(ctx, outPath, opts, func(w *ext4.Writer) error {
		return ApplyImage(ctx, w, img)
	})
}

func unpack(ctx context.Context, outPath string, opts []ext4.Option, apply func(*ext4.Writer) error) error {
	dir, base := filepath.Split(outPath)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("unpack %s: %w", outPath, err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	w, err := ext4.NewWriter(tmp, opts...)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", outPath, err)
	}
	if err := apply(w); err != nil {
		w.Abort()
		return fmt.Errorf("unpack %s: %w", outPath, err)
	}
	if err := w.Close(ctx); err != nil {
		return fmt.Errorf("unpack %s: %w", outPath, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("unpack %s: %w", outPath, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("unpack %s: sync: %w", outPath, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("unpack %s: %w", outPath, err)
	}
	if err := os.Rename(tmpName, outPath); err != nil {
		return fmt.Errorf("unpack %s: %w", outPath, err)
	}
	ok = true
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable; failure only weakens durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
