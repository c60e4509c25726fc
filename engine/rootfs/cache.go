package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/ext4"
	"github.com/berthvm/berth/engine/home"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"
)

// Cache keeps one base ext4 image per (image manifest digest, ext4 writer
// version) in a directory and hands out copy-on-write clones of them.
// A base image is built at most once at a time, across goroutines (by
// singleflight) and processes (by a lock file), and is written under a
// temporary name and renamed, so a crash never leaves a partial base image
// under its final name.
type Cache struct {
	dir   string
	size  int64
	group singleflight.Group
}

// CacheOption configures a Cache.
type CacheOption func(*Cache)

// WithImageSize sets the size in bytes of the base images the cache builds;
// by default they are sized to their content plus free space.
func WithImageSize(bytes int64) CacheOption { return func(c *Cache) { c.size = bytes } }

// NewCache returns a cache that keeps its images in dir. It creates dir
// with mode 0700 if needed (tightening an existing dir that other users
// could use), and removes the temporary images of builds that a killed
// process left: those whose build lock nobody holds.
func NewCache(dir string, opts ...CacheOption) (*Cache, error) {
	if err := home.MkdirPrivate(dir); err != nil {
		return nil, fmt.Errorf("rootfs cache: %w", err)
	}
	c := &Cache{dir: dir}
	for _, o := range opts {
		o(c)
	}
	if err := c.removeAbandonedBuilds(); err != nil {
		return nil, err
	}
	return c, nil
}

// tempMarker separates an image's name from the random suffix of the
// temporary file it is built in ("." + name + ".tmp-" + random).
const tempMarker = ".tmp-"

// removeAbandonedBuilds deletes every temporary image in the cache whose
// build lock (the image's name + ".lock") is free: a build in progress, in
// this process or another, holds it for as long as its temporary file
// exists, so a free lock proves the builder is dead.
func (c *Cache) removeAbandonedBuilds() error {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("rootfs cache %s: %w", c.dir, err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel() // take free locks only; never wait for a live build
	for _, e := range entries {
		name := e.Name()
		i := strings.Index(name, tempMarker)
		if !strings.HasPrefix(name, ".") || i < 0 || !e.Type().IsRegular() {
			continue
		}
		unlock, err := lockFile(done, filepath.Join(c.dir, name[1:i]+".lock"))
		if err != nil {
			continue // building now, or the lock cannot be taken: keep it
		}
		err = os.Remove(filepath.Join(c.dir, name))
		unlock()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rootfs cache: remove abandoned build %s: %w", name, err)
		}
	}
	return nil
}

const imageSuffix = ".ext4"

func baseName(d v1.Hash) string {
	return d.Algorithm + "-" + d.Hex + ".v" + ext4.Version + imageSuffix
}

// Path returns where the base image for the manifest digest d is kept
// (whether or not it has been built).
func (c *Cache) Path(d v1.Hash) string { return filepath.Join(c.dir, baseName(d)) }

// Has reports whether the base image for d is built.
func (c *Cache) Has(d v1.Hash) bool {
	_, err := os.Stat(c.Path(d))
	return err == nil
}

// Ensure returns the path of img's base image, building it first if it is
// not in the cache. Concurrent callers for the same image wait for one
// build, which runs with the context of the caller that started it: if
// that caller is cancelled the build stops (removing its temporary file)
// and the others start another.
func (c *Cache) Ensure(ctx context.Context, img v1.Image) (string, error) {
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("rootfs cache: image digest: %w", err)
	}
	p := c.Path(d)
	for {
		if c.Has(d) {
			return p, nil
		}
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("rootfs cache: build %s: %w", d, err)
		}
		ch := c.group.DoChan(d.String(), func() (any, error) {
			return nil, c.build(ctx, img, d)
		})
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("rootfs cache: build %s: %w", d, ctx.Err())
		case res := <-ch:
			if res.Err == nil {
				return p, nil
			}
			if ctx.Err() == nil && (errors.Is(res.Err, context.Canceled) || errors.Is(res.Err, context.DeadlineExceeded)) {
				continue // another caller's build was cancelled; ours is not
			}
			return "", res.Err
		}
	}
}

func (c *Cache) build(ctx context.Context, img v1.Image, d v1.Hash) error {
	p := c.Path(d)
	unlock, err := lockFile(ctx, p+".lock")
	if err != nil {
		return fmt.Errorf("rootfs cache: build %s: %w", d, err)
	}
	defer unlock()
	if c.Has(d) {
		return nil // built by another process while we waited
	}
	// Temporary files left by a crashed build of this image.
	stale, _ := filepath.Glob(filepath.Join(c.dir, "."+baseName(d)+tempMarker+"*"))
	for _, s := range stale {
		os.Remove(s)
	}
	if err := Unpack(ctx, img, p, c.size); err != nil {
		return fmt.Errorf("rootfs cache: build %s: %w", d, err)
	}
	return nil
}

// Clone makes dst (which must not exist) a copy-on-write clone of the base
// image for d: FICLONE on Linux, clonefile on macOS, and where the
// filesystem cannot share blocks a copy that keeps holes. A missing base
// image is a not-found error.
func (c *Cache) Clone(ctx context.Context, d v1.Hash, dst string) error {
	src := c.Path(d)
	if !c.Has(d) {
		return errdefs.NotFound(fmt.Errorf("rootfs cache: clone %s: no base image built", d))
	}
	if _, err := os.Lstat(dst); err == nil {
		return errdefs.AlreadyExists(fmt.Errorf("rootfs cache: clone %s to %s: destination exists", d, dst))
	}
	if err := cloneFile(ctx, src, dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("rootfs cache: clone %s to %s: %w", d, dst, err)
	}
	return nil
}

// Remove deletes the base image for d (clones are independent files and
// stay). Removing an image that is not there is not an error.
func (c *Cache) Remove(d v1.Hash) error {
	for _, p := range []string{c.Path(d), c.Path(d) + ".lock"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rootfs cache: remove %s: %w", d, err)
		}
	}
	return nil
}

// Prune deletes every base image whose digest keep rejects, images made by
// other versions of the ext4 writer, and the temporary files of builds
// nobody is running. It returns the digests of the images it removed.
func (c *Cache) Prune(ctx context.Context, keep func(v1.Hash) bool) ([]v1.Hash, error) {
	if err := c.removeAbandonedBuilds(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, fmt.Errorf("rootfs cache: prune %s: %w", c.dir, err)
	}
	var removed []v1.Hash
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		name := e.Name()
		full := filepath.Join(c.dir, name)
		if !strings.HasSuffix(name, imageSuffix) {
			continue
		}
		stem := strings.TrimSuffix(name, imageSuffix)
		dot := strings.LastIndex(stem, ".v")
		if dot < 0 {
			continue
		}
		alg, hex, ok := strings.Cut(stem[:dot], "-")
		if !ok {
			continue
		}
		d := v1.Hash{Algorithm: alg, Hex: hex}
		if stem[dot+2:] == ext4.Version && keep(d) {
			continue
		}
		if err := os.Remove(full); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("rootfs cache: prune %s: %w", name, err)
		}
		os.Remove(full + ".lock")
		removed = append(removed, d)
	}
	return removed, nil
}
