package ext4

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// punchHole deallocates a range of f, keeping its size. File systems that
// cannot punch holes leave the range as it is.
func punchHole(f *os.File, off, length int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return nil
	}
	return err
}
