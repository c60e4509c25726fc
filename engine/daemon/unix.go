package daemon

import (
	"errors"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes a non-blocking exclusive flock on f.
func lockFile(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// listenPrivate listens on a unix socket that only the owner can connect
// to: the umask (process-wide, restored at once; Start runs before anything
// else creates files) makes it 0600 from birth, with no window where it is
// wider, and a chmod makes sure. The home itself is 0700 as well.
func listenPrivate(path string) (net.Listener, error) {
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
