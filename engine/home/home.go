// Package home resolves the Berth home: the one directory that holds all of
// Berth's state (images, containers, kernels, logs) and its API socket.
package home

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/berthvm/berth/engine/errdefs"
)

// EnvVar names the environment variable that overrides the default home.
const EnvVar = "BERTH_HOME"

// maxSocketPath is the longest unix socket path the platform accepts
// (sun_path is 104 bytes on macOS, 108 on Linux, both NUL-terminated).
func maxSocketPath() int {
	if runtime.GOOS == "darwin" {
		return 103
	}
	return 107
}

// Home is a resolved Berth home directory.
type Home struct {
	// Dir is the absolute path of the home.
	Dir string
}

// Resolve picks the home: flag (when not empty), else $BERTH_HOME, else
// ~/.berth. The path is made absolute; nothing is created.
func Resolve(flag string) (Home, error) {
	dir := flag
	if dir == "" {
		dir = os.Getenv(EnvVar)
	}
	if dir == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return Home{}, fmt.Errorf("resolve Berth home: no --home, no $%s and no user home directory: %w", EnvVar, err)
		}
		dir = filepath.Join(h, ".berth")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Home{}, fmt.Errorf("resolve Berth home %s: %w", dir, err)
	}
	h := Home{Dir: abs}
	if n := len(h.Socket()); n > maxSocketPath() {
		return Home{}, errdefs.InvalidArgument(fmt.Errorf("Berth home %s: socket path %s is %d bytes, longer than the %d this OS allows: choose a shorter --home", abs, h.Socket(), n, maxSocketPath()))
	}
	return h, nil
}

// Ensure creates the home (mode 0700) if it does not exist, and tightens
// an existing one that other users could read or write to 0700: it holds
// images, root filesystems and the API socket, none of which is theirs.
func (h Home) Ensure() error {
	if err := MkdirPrivate(h.Dir); err != nil {
		return fmt.Errorf("Berth home: %w", err)
	}
	return nil
}

// MkdirPrivate makes dir (and its missing parents) a directory only its
// owner can use: created with mode 0700, or, when it exists with any
// group or other permission bit, changed to 0700. A path that is not a
// directory, or one whose mode cannot be changed, is an error that says
// so.
func MkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return errdefs.InvalidArgument(fmt.Errorf("create %s: it exists and is not a directory", dir))
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("%s has mode %04o, usable by other users, and cannot be restricted to 0700: %w", dir, fi.Mode().Perm(), err)
	}
	return nil
}

// Socket is the API socket's path.
func (h Home) Socket() string { return filepath.Join(h.Dir, "berth.sock") }

// LockFile is the file the running daemon holds locked.
func (h Home) LockFile() string { return filepath.Join(h.Dir, "daemon.lock") }

// LogFile is the daemon's log.
func (h Home) LogFile() string { return filepath.Join(h.Dir, "daemon.log") }

// Path joins elem under the home (images, containers, kernel, ...).
func (h Home) Path(elem ...string) string {
	return filepath.Join(append([]string{h.Dir}, elem...)...)
}
