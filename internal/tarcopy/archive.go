package tarcopy

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Archive writes a tar stream of name (a path relative to root, "." for
// root itself) and, for a directory, everything under it, to w. Entries
// are named as Docker names them: name's last element becomes as (for
// /etc/hostname requested as "hostname": "hostname"; for a directory
// "d": "d/", "d/x"; as "." for "d/.": "./", "./x"). Symlinks are archived as symlinks, never followed;
// sockets are skipped, as Docker skips them. ctx is checked between
// entries.
func Archive(ctx context.Context, root *os.Root, name, as string, w io.Writer) error {
	tw := tar.NewWriter(w)
	if err := archiveTree(ctx, root, path.Clean(name), as, tw); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	return nil
}

func archiveTree(ctx context.Context, root *os.Root, name, as string, tw *tar.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := root.Lstat(name)
	if err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	if fi.Mode()&fs.ModeSocket != 0 {
		return nil
	}
	var link string
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = root.Readlink(name); err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	hdr.Name = as
	if fi.IsDir() && !strings.HasSuffix(as, "/") {
		hdr.Name += "/"
	}
	// Names from the host's user database mean nothing in a container.
	hdr.Uname, hdr.Gname = "", ""
	hdr.Format = tar.FormatPAX
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	switch {
	case fi.Mode().IsRegular():
		f, err := root.Open(name)
		if err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
		_, err = io.CopyN(tw, f, hdr.Size)
		f.Close()
		if err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
	case fi.IsDir():
		d, err := root.Open(name)
		if err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return fmt.Errorf("archive %s: %w", name, err)
		}
		slices.Sort(names)
		for _, n := range names {
			// Not path.Join: "." as the top name stays "./n", as Docker
			// names the entries of "dir/.".
			if err := archiveTree(ctx, root, path.Join(name, n), strings.TrimSuffix(as, "/")+"/"+n, tw); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxSymlinks bounds the symlinks ResolveInRoot follows (Linux's 40).
const maxSymlinks = 40

// ResolveInRoot resolves p, an absolute path inside root, as Docker
// resolves docker cp's paths in a container: every symlink on the way is
// followed inside root (an absolute target starts again at root, ".."
// stops at root), the last element only when followLast. The result is
// relative to root ("." for root itself) and, when it exists, has no
// symlink on its way; a missing last element is kept as it is.
func ResolveInRoot(root *os.Root, p string, followLast bool) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("resolve %q: the path must be absolute", p)
	}
	var resolved []string // elements of the result so far
	todo := strings.Split(path.Clean(p), "/")
	links := 0
	for len(todo) > 0 {
		el := todo[0]
		todo = todo[1:]
		switch el {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		cur := path.Join(append(slices.Clone(resolved), el)...)
		fi, err := root.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) && len(todo) == 0 {
			resolved = append(resolved, el)
			break
		}
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 || (len(todo) == 0 && !followLast) {
			resolved = append(resolved, el)
			continue
		}
		if links++; links > maxSymlinks {
			return "", fmt.Errorf("resolve %s: too many levels of symbolic links", p)
		}
		target, err := root.Readlink(cur)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", p, err)
		}
		if strings.HasPrefix(target, "/") {
			resolved = nil
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	if len(resolved) == 0 {
		return ".", nil
	}
	return path.Join(resolved...), nil
}
