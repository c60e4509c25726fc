package guest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/berthvm/berth/engine/user"
)

// resolveUser resolves a Docker USER value against the passwd and group
// files at passwdPath and groupPath (the container's /etc/passwd and
// /etc/group) with package user, the code the host checks USER with, and
// adds extra to the supplementary groups.
func resolveUser(spec, passwdPath, groupPath string, extra []uint32) (user.Exec, error) {
	passwd, err := openIfExists(passwdPath)
	if err != nil {
		return user.Exec{}, err
	}
	if passwd != nil {
		defer passwd.Close()
	}
	group, err := openIfExists(groupPath)
	if err != nil {
		return user.Exec{}, err
	}
	if group != nil {
		defer group.Close()
	}
	return user.Resolve(spec, reader(passwd), reader(group), extra)
}

// openIfExists opens p; a file that does not exist is nil, no error.
func openIfExists(p string) (*os.File, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolve user: %w", err)
	}
	return f, nil
}

// reader is f as an io.Reader, nil (not a nil *os.File) when f is.
func reader(f *os.File) io.Reader {
	if f == nil {
		return nil
	}
	return f
}
