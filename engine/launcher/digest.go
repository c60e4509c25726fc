package launcher

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// fileID identifies one version of a file: a file rewritten in place
// changes its size or modification time, one replaced by rename its
// inode.
type fileID struct {
	path  string
	size  int64
	mtime time.Time
	ino   uint64
}

// digests caches the SHA-256 of files by identity. It is the Launcher's
// own: each engine has one, and nothing global outlives it.
type digests struct {
	mu     sync.Mutex
	sums   map[fileID][sha256.Size]byte
	hashes int // files actually read, for tests
}

func newDigests() *digests { return &digests{sums: map[fileID][sha256.Size]byte{}} }

// sum returns the SHA-256 of the file at path, reading it only when this
// version of it has not been hashed before. It streams the file.
func (d *digests) sum(path string) ([sha256.Size]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("hash %s: %w", path, err)
	}
	id := fileID{path: path, size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}
	d.mu.Lock()
	s, ok := d.sums[id]
	d.mu.Unlock()
	if ok {
		return s, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("hash %s: %w", path, err)
	}
	h.Sum(s[:0])
	d.mu.Lock()
	d.sums[id] = s
	d.hashes++
	d.mu.Unlock()
	return s, nil
}
