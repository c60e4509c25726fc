package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// containerCgroup makes the cgroup a new container's init is cloned into
// (CLONE_INTO_CGROUP): Config.CgroupParent/N-ID, N the server's count of
// containers (IDs may repeat after a delete), ID the process ID reduced
// to the characters a cgroup name may hold. With CLONE_NEWCGROUP that
// cgroup is the root of the container's cgroup namespace, so the cgroup2
// it mounts at /sys/fs/cgroup shows its own subtree only. It returns the
// directory and an open descriptor of it, or "" and -1 when CgroupParent
// is empty (the container stays in the server's cgroup).
func (s *Server) containerCgroup(id string) (string, int, error) {
	if s.cfg.CgroupParent == "" {
		return "", -1, nil
	}
	if err := os.MkdirAll(s.cfg.CgroupParent, 0o755); err != nil {
		return "", -1, fmt.Errorf("create cgroup parent %s: %w", s.cfg.CgroupParent, err)
	}
	n := s.cgroupSeq.Add(1)
	dir := filepath.Join(s.cfg.CgroupParent, strconv.FormatUint(n, 10)+"-"+cgroupName(id))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", -1, fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(dir)
		return "", -1, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	return dir, fd, nil
}

// cgroupName keeps the letters, digits, '-', '_' and '.' of id, at most
// 64 of them.
func cgroupName(id string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, id)
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// removeCgroup removes the cgroup dir and the cgroups made inside it (a
// privileged container's runtime makes its own), deepest first. The
// container's processes are gone by then: its init was reaped, which
// ends its PID namespace.
func removeCgroup(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			errs = append(errs, removeCgroup(filepath.Join(dir, e.Name())))
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
	}
	return errors.Join(errs...)
}
