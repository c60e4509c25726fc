//go:build unix

package image

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/errdefs"
)

// lockDir takes an exclusive flock on path, so that one process (one
// Store) at a time owns the store; the kernel drops it if the process dies.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errdefs.Conflict(fmt.Errorf("image store is in use by another process or Store (lock %s held)", path))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
