package ninep

import (
	"errors"

	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// pathFlags open a walked object without reading it, and a symlink as
// itself.
const pathFlags = unix.O_PATH | unix.O_NOFOLLOW

// openBeneath opens the single component name beneath dir without
// following symlinks or leaving dir.
func openBeneath(dir int, name string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	if flags&unix.O_CREAT != 0 {
		how.Mode = uint64(mode)
	}
	for {
		fd, err := unix.Openat2(dir, name, &how)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOSYS) {
			// Kernels before 5.6: name is one checked component, and
			// O_NOFOLLOW refuses a symlink, so openat is as narrow.
			return unix.Openat(dir, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
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
		Type:            uint32(s.Type),
		BlockSize:       uint32(s.Bsize),
		Blocks:          s.Blocks,
		BlocksFree:      s.Bfree,
		BlocksAvailable: s.Bavail,
		Files:           s.Files,
		FilesFree:       s.Ffree,
		NameLength:      uint32(s.Namelen),
	}, nil
}

func mkfifoAt(dir int, name string, mode uint32) error { return unix.Mkfifoat(dir, name, mode) }

const (
	utimeNow  = unix.UTIME_NOW
	utimeOmit = unix.UTIME_OMIT
)
