package guest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"
)

// copyUp is Docker's volume copy-up: when dst (a volume's directory, as
// the guest sees it) is empty, it receives a copy of the tree at srcDir
// (what the container's rootfs holds at the mount's target, resolved in
// the rootfs by the caller) — directories, regular files and symlinks,
// with their owners, modes and modification times; the copy's root takes
// the owner and mode of srcDir itself. Both trees are walked through
// os.Root and symlinks are copied, never followed, so nothing outside
// srcDir is read and nothing outside dst is written. Device nodes, fifos
// and sockets are left out (their number is returned); hard links become
// separate files.
func copyUp(srcDir, dst string) (skipped int, err error) {
	src, err := os.OpenRoot(srcDir)
	if err != nil {
		return 0, fmt.Errorf("copy up: %w", err)
	}
	defer src.Close()
	out, err := os.OpenRoot(dst)
	if err != nil {
		return 0, fmt.Errorf("copy up: open the volume: %w", err)
	}
	defer out.Close()
	if entries, err := fs.ReadDir(out.FS(), "."); err != nil {
		return 0, fmt.Errorf("copy up: read the volume: %w", err)
	} else if len(entries) > 0 {
		return 0, nil // not a new volume: Docker copies into empty ones only
	}
	type dirTimes struct {
		path  string
		mtime time.Time
	}
	var dirs []dirTimes
	err = fs.WalkDir(src.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := src.Lstat(p)
		if err != nil {
			return err
		}
		mode := fi.Mode()
		switch {
		case mode.IsDir():
			if p != "." {
				if err := out.Mkdir(p, 0o700); err != nil {
					return err
				}
			}
			dirs = append(dirs, dirTimes{p, fi.ModTime()})
		case mode.IsRegular():
			if err := copyFile(src, out, p); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			target, err := src.Readlink(p)
			if err != nil {
				return err
			}
			if err := out.Symlink(target, p); err != nil {
				return err
			}
		default:
			skipped++
			return nil
		}
		if mode&fs.ModeSymlink != 0 {
			return chownLike(fi, func(uid, gid int) error { return out.Lchown(p, uid, gid) })
		}
		return setAttrs(out, p, fi)
	})
	if err != nil {
		return skipped, fmt.Errorf("copy up: %w", err)
	}
	// Directory times last, deepest first: filling a directory changes
	// its modification time.
	for _, d := range slices.Backward(dirs) {
		if err := out.Chtimes(d.path, d.mtime, d.mtime); err != nil {
			return skipped, fmt.Errorf("copy up: %w", err)
		}
	}
	return skipped, nil
}

// setAttrs gives the directory or regular file p in dst fi's owner, then
// (a chown clears set-id bits) its mode with the set-id and sticky bits,
// then a file's modification time.
func setAttrs(dst *os.Root, p string, fi fs.FileInfo) error {
	f, err := dst.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := chownLike(fi, f.Chown); err != nil {
		return err
	}
	if err := f.Chmod(fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
		return err
	}
	if fi.Mode().IsRegular() {
		return dst.Chtimes(p, fi.ModTime(), fi.ModTime())
	}
	return nil
}

// copyFile copies the regular file p from src to a new file p in dst.
func copyFile(src, dst *os.Root, p string) error {
	in, err := src.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := dst.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, in); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// chownLike gives a copy fi's owner through chown, when fi has one; a
// share that keeps no owners (ignorableOwnership) is not an error.
func chownLike(fi fs.FileInfo, chown func(uid, gid int) error) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := chown(int(st.Uid), int(st.Gid)); err != nil && !ignorableOwnership(err) {
		return err
	}
	return nil
}

// ignorableOwnership reports a chown the share refuses: a host that keeps
// files as the user running Berth (QEMU's security_model=none, a
// run-time share) has no owners to give.
func ignorableOwnership(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EINVAL)
}
