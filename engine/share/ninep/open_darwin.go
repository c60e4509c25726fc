package ninep

import (
	"errors"

	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// pathFlags open a walked object as itself (O_SYMLINK: a symlink is not
// followed), without blocking on a FIFO. macOS has no O_PATH, so an
// entry the user cannot read cannot be walked.
const pathFlags = unix.O_RDONLY | unix.O_SYMLINK | unix.O_NONBLOCK

// openBeneath opens the single component name beneath dir without
// following symlinks: macOS has no openat2, but name is one checked
// component (not "..", no "/"), and O_NOFOLLOW refuses a final symlink
// unless O_SYMLINK asked for the link itself.
func openBeneath(dir int, name string, flags int, mode uint32) (int, error) {
	if flags&unix.O_SYMLINK == 0 {
		flags |= unix.O_NOFOLLOW
	}
	for {
		fd, err := unix.Openat(dir, name, flags|unix.O_CLOEXEC, mode)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

func statFS(fd int) (p9.FSStat, error) {
	var s unix.Statfs_t
	if err := unix.Fstatfs(fd, &s); err != nil {
		return p9.FSStat{}, err
	}
	return p9.FSStat{
		Type:            s.Type,
		BlockSize:       s.Bsize,
		Blocks:          s.Blocks,
		BlocksFree:      s.Bfree,
		BlocksAvailable: s.Bavail,
		Files:           s.Files,
		FilesFree:       s.Ffree,
		NameLength:      255,
	}, nil
}

// mkfifoAt: golang.org/x/sys has no mkfifoat for macOS, so a guest
// cannot make a FIFO in a shared folder there.
func mkfifoAt(int, string, uint32) error { return unix.EPERM }

// utimensat's special times, from <sys/stat.h> (not in x/sys for macOS).
const (
	utimeNow  = -1
	utimeOmit = -2
)
