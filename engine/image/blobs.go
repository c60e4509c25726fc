package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berthvm/berth/internal/ctxio"
)

// The on-disk layout of a store directory:
//
//	oci-layout             {"imageLayoutVersion":"1.0.0"}
//	index.json             OCI image index of every stored image (derived)
//	repositories.json      Berth's reference database (the source of truth)
//	blobs/sha256/<hex>     content-addressed blobs, complete and verified
//	ingest/<hex>           partial downloads, kept to resume with Range
//
// ingest/ lives in the same directory tree, hence on the same file system,
// so moving a finished blob into blobs/ is an atomic rename.
const (
	blobsDir  = "blobs/sha256"
	ingestDir = "ingest"
)

// errDigestMismatch marks a blob whose content does not hash to its digest.
var errDigestMismatch = errors.New("digest mismatch")

// errResumedMismatch marks a digest mismatch of a download that resumed a
// partial file: the partial file may have been stale, so a fresh download
// may succeed.
var errResumedMismatch = fmt.Errorf("%w after resuming a partial download", errDigestMismatch)

// errTruncated marks a blob that ended before its declared size.
var errTruncated = errors.New("blob truncated")

func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.root, blobsDir, h.Hex)
}

func (s *Store) ingestPath(h v1.Hash) string {
	return filepath.Join(s.root, ingestDir, h.Hex)
}

// hasBlob reports whether the complete blob h of the given size is stored
// (size < 0: any size).
func (s *Store) hasBlob(h v1.Hash, size int64) bool {
	fi, err := os.Stat(s.blobPath(h))
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	return size < 0 || fi.Size() == size
}

// readBlob returns the content of a small stored blob (manifests, configs).
func (s *Store) readBlob(h v1.Hash) ([]byte, error) {
	if h.Algorithm != "sha256" {
		return nil, fmt.Errorf("unsupported digest algorithm %q", h.Algorithm)
	}
	return os.ReadFile(s.blobPath(h))
}

// keyedLock is a set of mutexes keyed by digest whose Lock honours ctx, so
// that two pulls of the same image download each blob once: the second
// waits for the first and then finds the blob stored.
type keyedLock struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	ch chan struct{}
	n  int
}

func (k *keyedLock) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyedEntry)
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{ch: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.n++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		e.n--
		if e.n == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// blobSource opens the content of a blob from offset onwards. It returns
// the offset the reader actually starts at: offset, or 0 when the source
// cannot seek (a registry that ignores Range).
type blobSource func(ctx context.Context, offset int64) (rc io.ReadCloser, start int64, err error)

// ingest stores the blob desc from src unless it is already stored. The
// bytes are hashed while they stream into ingest/<hex>; only when the size
// and digest match is the file fsynced and renamed into blobs/. A digest
// mismatch discards the partial file; any other failure keeps it, so that
// the next attempt resumes from where this one stopped. The caller holds
// the digest's lock. progress, if not nil, is called with the bytes held so
// far. It reports whether the blob was already stored.
func (s *Store) ingest(ctx context.Context, desc v1.Descriptor, src blobSource, progress func(int64)) (existed bool, err error) {
	if desc.Digest.Algorithm != "sha256" {
		return false, fmt.Errorf("blob %s: unsupported digest algorithm", desc.Digest)
	}
	if s.hasBlob(desc.Digest, desc.Size) {
		return true, nil
	}
	part := s.ingestPath(desc.Digest)
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return false, fmt.Errorf("blob %s: %w", desc.Digest, diskErr(err, s.root))
	}
	keep := true
	defer func() {
		f.Close()
		if !keep {
			os.Remove(part)
		}
	}()

	h := sha256.New()
	have, err := resumeFrom(ctx, f, h, desc.Size)
	if err != nil {
		return false, fmt.Errorf("blob %s: read partial download: %w", desc.Digest, err)
	}
	resumed := have > 0
	if progress != nil && have > 0 {
		progress(have)
	}
	rc, start, err := src(ctx, have)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	if start != have {
		// The source restarted from the beginning: drop what we had.
		if start != 0 {
			// Neither where we asked nor the beginning: start over
			// on the next attempt.
			keep = false
			return false, fmt.Errorf("blob %s: %w: the registry resumed at byte %d, not %d", desc.Digest, errTruncated, start, have)
		}
		if err := f.Truncate(0); err != nil {
			return false, fmt.Errorf("blob %s: %w", desc.Digest, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return false, fmt.Errorf("blob %s: %w", desc.Digest, err)
		}
		h.Reset()
		have = 0
		resumed = false
	}

	have, err = s.receive(ctx, io.MultiWriter(f, h), rc, have, desc, progress)
	if err != nil {
		if isENOSPC(err) {
			keep = false
		}
		return false, err
	}
	if have < desc.Size {
		return false, fmt.Errorf("blob %s: %w: got %d of %d bytes", desc.Digest, errTruncated, have, desc.Size)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if have > desc.Size || got != desc.Digest {
		keep = false
		what := fmt.Sprintf("content hashes to %s", got)
		if have > desc.Size {
			what = fmt.Sprintf("content is longer than its declared %d bytes", desc.Size)
		}
		cause := errDigestMismatch
		if resumed {
			cause = errResumedMismatch
		}
		return false, fmt.Errorf("blob %s: %w: %s; blob discarded", desc.Digest, cause, what)
	}
	if err := f.Sync(); err != nil {
		keep = !isENOSPC(err)
		return false, fmt.Errorf("blob %s: %w", desc.Digest, diskErr(err, s.root))
	}
	if err := os.Rename(part, s.blobPath(desc.Digest)); err != nil {
		return false, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	keep = true // renamed away; nothing to remove
	syncDir(filepath.Join(s.root, blobsDir))
	return false, nil
}

// receive copies the blob's bytes from rc to w, which already holds
// have of them, reading at most one byte more than the blob's size (so an
// overlong body shows), and calls progress as they come. It returns the
// bytes held; ctx stops it between reads.
func (s *Store) receive(ctx context.Context, w io.Writer, rc io.Reader, have int64, desc v1.Descriptor, progress func(int64)) (int64, error) {
	buf := make([]byte, 128<<10)
	r := io.LimitReader(rc, desc.Size-have+1)
	for {
		if err := ctx.Err(); err != nil {
			return have, err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return have, fmt.Errorf("blob %s: %w", desc.Digest, diskErr(werr, s.root))
			}
			have += int64(n)
			if progress != nil {
				progress(min(have, desc.Size))
			}
		}
		if rerr == io.EOF {
			return have, nil
		}
		if rerr != nil {
			return have, fmt.Errorf("blob %s: read after %d of %d bytes: %w", desc.Digest, have, desc.Size, rerr)
		}
	}
}

// resumeFrom hashes the partial download already in f (stopping when ctx
// ends) and leaves f positioned after it. A partial file longer than the
// blob is emptied.
func resumeFrom(ctx context.Context, f *os.File, h hash.Hash, size int64) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() > size {
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
		_, err := f.Seek(0, io.SeekStart)
		return 0, err
	}
	return io.CopyN(h, ctxio.NewReader(ctx, f), fi.Size())
}

// putBlob stores a blob whose content is in memory (manifests, configs).
func (s *Store) putBlob(ctx context.Context, desc v1.Descriptor, data []byte) error {
	unlock, err := s.blobLocks.lock(ctx, desc.Digest.String())
	if err != nil {
		return err
	}
	defer unlock()
	_, err = s.ingest(ctx, desc, func(context.Context, int64) (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(data)), 0, nil
	}, nil)
	return err
}

// isENOSPC reports whether err is the file system running out of space.
func isENOSPC(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// diskErr rewrites an out-of-space error into a message that says so and
// names the store directory.
func diskErr(err error, root string) error {
	if isENOSPC(err) {
		return fmt.Errorf("no space left on device for the image store at %s (partial file removed): %w", root, err)
	}
	return err
}

// syncDir fsyncs a directory so that a rename in it survives a crash.
// Errors are ignored: some file systems cannot sync directories.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// writeFileAtomic writes data to path via a temporary file in the same
// directory, fsync and rename, so readers see the old or the new content.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return diskErr(err, dir)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return diskErr(err, dir)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(dir)
	return nil
}
