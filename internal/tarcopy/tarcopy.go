// Package tarcopy is docker cp's file transfer: tar streams written from,
// and extracted into, a directory tree opened as an os.Root, so that no
// entry, symlink or hard link can reach outside it. The guest agent uses
// it on the container's rootfs (GET, PUT /containers/{id}/archive) and
// berth cp on the host's side.
//
// Extract refuses hostile archives rather than sanitising them: an entry
// or hard link target that is absolute or has a ".." element, a name over
// MaxNameLen, more than MaxEntries entries, device nodes, and any entry
// whose path passes through a symlink leading out of the target (os.Root
// refuses the traversal) end the extraction with an error naming the
// entry. Entries before the bad one stay written, all inside the target.
package tarcopy

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Limits on an archive Extract accepts.
const (
	// MaxNameLen bounds an entry's name and a link's target (PATH_MAX).
	MaxNameLen = 4096
	// MaxEntries bounds the entries of one archive.
	MaxEntries = 1 << 20
)

// ExtractOptions tune Extract.
type ExtractOptions struct {
	// KeepOwner gives each entry the archive's uid and gid (docker cp -a);
	// otherwise entries get UID and GID.
	KeepOwner bool
	// UID and GID own the extracted entries without KeepOwner; -1 leaves
	// them to the process that extracts.
	UID, GID int
	// NoOverwriteDirNonDir refuses to replace a directory with a
	// non-directory or the reverse (Docker's noOverwriteDirNonDir).
	NoOverwriteDirNonDir bool
	// Rename, when From is set, replaces the archive's top-level name
	// From with To (berth cp to a new name).
	Rename struct{ From, To string }
}

// HostileError is an entry Extract refused.
type HostileError struct {
	Entry string
	Why   string
}

func (e *HostileError) Error() string {
	return fmt.Sprintf("archive entry %q refused: %s", e.Entry, e.Why)
}

// Decompress returns r, uncompressed when it starts as a gzip stream
// (Docker's PUT archive accepts a compressed tar).
func Decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read gzip archive: %w", err)
		}
		return zr, nil
	}
	return br, nil
}

// checkName validates an archive path and returns it cleaned and
// relative ("." for the target itself).
func checkName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty name")
	case len(name) > MaxNameLen:
		return "", fmt.Errorf("name longer than %d bytes", MaxNameLen)
	case strings.ContainsRune(name, 0):
		return "", errors.New("NUL in name")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("absolute path")
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", errors.New(`".." element`)
		}
	}
	return path.Clean(name), nil
}

// Extract reads a tar stream from r and writes its entries into root.
// ctx is checked between entries.
func Extract(ctx context.Context, root *os.Root, r io.Reader, opts ExtractOptions) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		name  string
		mtime time.Time
	}
	var dirs []dirTime
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if n >= MaxEntries {
			return &HostileError{Entry: hdr.Name, Why: fmt.Sprintf("more than %d entries", MaxEntries)}
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := checkName(hdr.Name)
		if err != nil {
			return &HostileError{Entry: hdr.Name, Why: err.Error()}
		}
		name = rename(name, opts.Rename.From, opts.Rename.To)
		if name == "." {
			continue // the target itself: already there
		}
		if err := extractEntry(root, tr, hdr, name, opts); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTime{name, hdr.ModTime})
		}
	}
	// Directories' times last: writing their entries changed them.
	for _, d := range slices.Backward(dirs) {
		_ = root.Chtimes(d.name, d.mtime, d.mtime)
	}
	return nil
}

// rename replaces name's first element from with to.
func rename(name, from, to string) string {
	if from == "" {
		return name
	}
	if name == from {
		return to
	}
	if rest, ok := strings.CutPrefix(name, from+"/"); ok {
		return path.Join(to, rest)
	}
	return name
}

func extractEntry(root *os.Root, tr *tar.Reader, hdr *tar.Header, name string, opts ExtractOptions) error {
	fail := func(err error) error {
		var he *HostileError
		if errors.As(err, &he) {
			return err
		}
		if strings.Contains(err.Error(), "escapes from parent") {
			return &HostileError{Entry: hdr.Name, Why: "its path leads outside the target through a symlink"}
		}
		return fmt.Errorf("extract %q: %w", hdr.Name, err)
	}
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fail(err)
		}
	}
	existing, err := root.Lstat(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	isDir := hdr.Typeflag == tar.TypeDir
	if existing != nil {
		if opts.NoOverwriteDirNonDir && existing.IsDir() != isDir {
			return fail(fmt.Errorf("cannot overwrite %s with %s", kind(existing.IsDir()), kind(isDir)))
		}
		if !(existing.IsDir() && isDir) {
			if err := root.RemoveAll(name); err != nil {
				return fail(err)
			}
			existing = nil
		}
	}
	mode := fs.FileMode(hdr.Mode) & fs.ModePerm
	if hdr.Mode&04000 != 0 {
		mode |= fs.ModeSetuid
	}
	if hdr.Mode&02000 != 0 {
		mode |= fs.ModeSetgid
	}
	if hdr.Mode&01000 != 0 {
		mode |= fs.ModeSticky
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if existing == nil {
			if err := root.Mkdir(name, 0o700); err != nil {
				return fail(err)
			}
		}
	case tar.TypeReg:
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fail(err)
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(err)
		}
	case tar.TypeSymlink:
		if hdr.Linkname == "" || len(hdr.Linkname) > MaxNameLen || strings.ContainsRune(hdr.Linkname, 0) {
			return &HostileError{Entry: hdr.Name, Why: "bad symlink target"}
		}
		if err := root.Symlink(hdr.Linkname, name); err != nil {
			return fail(err)
		}
	case tar.TypeLink:
		target, err := checkName(hdr.Linkname)
		if err != nil {
			return &HostileError{Entry: hdr.Name, Why: "hard link target: " + err.Error()}
		}
		target = rename(target, opts.Rename.From, opts.Rename.To)
		if fi, err := root.Lstat(target); err != nil {
			return fail(fmt.Errorf("hard link target %q: %w", hdr.Linkname, err))
		} else if fi.IsDir() {
			return &HostileError{Entry: hdr.Name, Why: "hard link to a directory"}
		}
		if err := root.Link(target, name); err != nil {
			return fail(err)
		}
		return nil // a hard link shares its target's owner, mode and times
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return &HostileError{Entry: hdr.Name, Why: "device nodes and FIFOs are not copied"}
	default:
		return &HostileError{Entry: hdr.Name, Why: fmt.Sprintf("unsupported entry type %q", hdr.Typeflag)}
	}
	uid, gid := opts.UID, opts.GID
	if opts.KeepOwner {
		uid, gid = hdr.Uid, hdr.Gid
	}
	if uid >= 0 || gid >= 0 {
		if err := root.Lchown(name, uid, gid); err != nil && !errors.Is(err, os.ErrPermission) {
			return fail(err)
		}
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return nil
	}
	if err := root.Chmod(name, mode); err != nil {
		return fail(err)
	}
	if hdr.Typeflag != tar.TypeDir {
		if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
			return fail(err)
		}
	}
	return nil
}

func kind(dir bool) string {
	if dir {
		return "a directory"
	}
	return "a non-directory"
}
