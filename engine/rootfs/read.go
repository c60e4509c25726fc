package rootfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"strings"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/user"
	goext4 "github.com/dsoprea/go-ext4"
)

// Reader reads files back out of an ext4 image, using github.com/dsoprea/
// go-ext4 for the superblock, group descriptors, inodes and directories.
// That library's DirectoryWalk reads every inode through the first group's
// descriptor and so breaks once inodes span two block groups, and its
// extent reader does not know holes and its inode reader refuses inodes
// without an extent tree (fast symlinks, devices): Reader looks each inode
// up through its own group's descriptor, decodes it itself and walks
// extent trees itself, and uses go-ext4's directory browser for
// directories.
type Reader struct {
	f    *os.File
	name string
	sb   *goext4.Superblock
	bgdl *goext4.BlockGroupDescriptorList
}

// OpenReader opens the ext4 image at p for reading.
func OpenReader(p string) (*Reader, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open ext4 %s: %w", p, err)
	}
	img, err := openReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open ext4 %s: %w", p, err)
	}
	return img, nil
}

func openReader(f *os.File) (img *Reader, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("not a readable ext4 image: %v", r)
		}
	}()
	if _, err := f.Seek(goext4.Superblock0Offset, io.SeekStart); err != nil {
		return nil, err
	}
	sb, err := goext4.NewSuperblockWithReader(f)
	if err != nil {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	if !sb.Is64Bit() {
		return nil, errdefs.InvalidArgument(errors.New("only images with the 64bit feature can be read"))
	}
	bgdl, err := goext4.NewBlockGroupDescriptorListWithReadSeeker(f, sb)
	if err != nil {
		return nil, fmt.Errorf("read group descriptors: %w", err)
	}
	return &Reader{f: f, name: f.Name(), sb: sb, bgdl: bgdl}, nil
}

// Close closes the image file.
func (im *Reader) Close() error { return im.f.Close() }

// inode reads the raw inode n through its own group's descriptor.
func (im *Reader) inode(n uint32) (id *goext4.InodeData, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read inode %d: %v", n, r)
		}
	}()
	sbd := im.sb.Data()
	if n == 0 || n > sbd.SInodesCount {
		return nil, fmt.Errorf("inode %d out of range", n)
	}
	bgd, err := im.bgdl.GetWithAbsoluteInode(int(n))
	if err != nil {
		return nil, fmt.Errorf("read inode %d: %w", n, err)
	}
	off := int64(bgd.InodeTableBlock())*int64(im.sb.BlockSize()) +
		int64((n-1)%sbd.SInodesPerGroup)*int64(sbd.SInodeSize)
	id = new(goext4.InodeData)
	if err := binary.Read(io.NewSectionReader(im.f, off, int64(sbd.SInodeSize)), binary.LittleEndian, id); err != nil {
		return nil, fmt.Errorf("read inode %d: %w", n, err)
	}
	return id, nil
}

func inodeSize(id *goext4.InodeData) uint64 {
	return uint64(id.ISizeHigh)<<32 | uint64(id.ISizeLo)
}

// readData reads up to limit bytes of an extent-mapped inode's content;
// holes read as zeros.
func (im *Reader) readData(id *goext4.InodeData, limit int64) ([]byte, error) {
	size := inodeSize(id)
	if int64(size) > limit {
		return nil, fmt.Errorf("content of %d bytes larger than the %d byte limit", size, limit)
	}
	if id.IFlags&goext4.InodeFlagExtents == 0 {
		return nil, errors.New("inode has no extent tree")
	}
	out := make([]byte, size)
	bs := uint64(im.sb.BlockSize())
	var walk func(node []byte, depth int) error
	walk = func(node []byte, depth int) error {
		if depth > 5 || len(node) < 12 || binary.LittleEndian.Uint16(node) != 0xF30A {
			return errors.New("bad extent tree")
		}
		entries := int(binary.LittleEndian.Uint16(node[2:]))
		d := binary.LittleEndian.Uint16(node[6:])
		if 12+12*entries > len(node) {
			return errors.New("bad extent tree")
		}
		for i := 0; i < entries; i++ {
			e := node[12+12*i:]
			if d > 0 {
				child := uint64(binary.LittleEndian.Uint16(e[8:]))<<32 | uint64(binary.LittleEndian.Uint32(e[4:]))
				blk := make([]byte, bs)
				if _, err := im.f.ReadAt(blk, int64(child*bs)); err != nil {
					return err
				}
				if err := walk(blk, depth+1); err != nil {
					return err
				}
				continue
			}
			logical := uint64(binary.LittleEndian.Uint32(e[0:]))
			length := uint64(binary.LittleEndian.Uint16(e[4:]))
			if length > 32768 {
				continue // unwritten extent: reads as zeros
			}
			phys := uint64(binary.LittleEndian.Uint16(e[6:]))<<32 | uint64(binary.LittleEndian.Uint32(e[8:]))
			start := logical * bs
			if start >= size {
				continue
			}
			end := min(start+length*bs, size)
			if _, err := im.f.ReadAt(out[start:end], int64(phys*bs)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(id.IBlock[:], 0); err != nil {
		return nil, err
	}
	return out, nil
}

// lookupChild finds name in directory dirIno with go-ext4's directory
// browser.
func (im *Reader) lookupChild(dirIno uint32, name string) (ino uint32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read directory inode %d: %v", dirIno, r)
		}
	}()
	bgd, err := im.bgdl.GetWithAbsoluteInode(int(dirIno))
	if err != nil {
		return 0, err
	}
	inode, err := goext4.NewInodeWithReadSeeker(bgd, im.f, int(dirIno))
	if err != nil {
		return 0, fmt.Errorf("read directory inode %d: %w", dirIno, err)
	}
	db := goext4.NewDirectoryBrowser(im.f, inode)
	for {
		de, err := db.Next()
		if err == io.EOF {
			return 0, errdefs.NotFound(fmt.Errorf("%s: no such file or directory", name))
		}
		if err != nil {
			return 0, fmt.Errorf("read directory inode %d: %w", dirIno, err)
		}
		if de.Data().Inode != 0 && de.Name() == name {
			return de.Data().Inode, nil
		}
	}
}

// resolve returns the inode p names, following symlinks inside the image
// (absolute ones from its root, ".." clamped at the root).
func (im *Reader) resolve(p string) (uint32, *goext4.InodeData, error) {
	stack := []uint32{2}
	queue := strings.Split(p, "/")
	links := 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		dir := stack[len(stack)-1]
		ino, err := im.lookupChild(dir, c)
		if err != nil {
			return 0, nil, err
		}
		id, err := im.inode(ino)
		if err != nil {
			return 0, nil, err
		}
		if id.IMode&0xF000 == 0xA000 {
			if links++; links > maxSymlinks {
				return 0, nil, errdefs.InvalidArgument(errors.New("too many levels of symbolic links"))
			}
			target, err := im.symlinkTarget(id)
			if err != nil {
				return 0, nil, err
			}
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			queue = append(strings.Split(target, "/"), queue...)
			continue
		}
		stack = append(stack, ino)
	}
	ino := stack[len(stack)-1]
	id, err := im.inode(ino)
	return ino, id, err
}

func (im *Reader) symlinkTarget(id *goext4.InodeData) (string, error) {
	size := inodeSize(id)
	if id.IFlags&goext4.InodeFlagExtents == 0 && size < 60 {
		return string(id.IBlock[:size]), nil
	}
	b, err := im.readData(id, 4096)
	return string(b), err
}

// ReadFile returns the content of the regular file at p inside the image,
// following symlinks inside the image. Files larger than limit bytes are
// refused.
func (im *Reader) ReadFile(p string, limit int64) ([]byte, error) {
	_, id, err := im.resolve(p)
	if err != nil {
		return nil, fmt.Errorf("read %s from ext4 %s: %w", p, im.name, err)
	}
	if id.IMode&0xF000 != 0x8000 {
		return nil, errdefs.InvalidArgument(fmt.Errorf("read %s from ext4 %s: not a regular file", p, im.name))
	}
	b, err := im.readData(id, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s from ext4 %s: %w", p, im.name, err)
	}
	return b, nil
}

// ReadFile returns the content of the regular file at p inside the ext4
// image at imagePath (at most 16 MiB).
func ReadFile(imagePath, p string) ([]byte, error) {
	im, err := OpenReader(imagePath)
	if err != nil {
		return nil, err
	}
	defer im.Close()
	return im.ReadFile(p, 16<<20)
}

// LookupUser resolves a Dockerfile USER value ("name", "uid",
// "name:group", "uid:gid") against /etc/passwd and /etc/group in the
// image with package user — the code the guest resolves it with when the
// process starts, so a value accepted here is accepted there. groups are
// the supplementary groups (gid first). A user or group the files lack,
// or a malformed line it names, is errdefs.ErrInvalidArgument with runc's
// text ("unable to find user app: no matching entries in passwd file"),
// which names nothing of the host; failures to read the image name it.
func LookupUser(ctx context.Context, imagePath, spec string) (uid, gid uint32, groups []uint32, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, nil, err
	}
	fail := func(err error) (uint32, uint32, []uint32, error) {
		return 0, 0, nil, fmt.Errorf("look up user %q in %s: %w", spec, imagePath, err)
	}
	im, err := OpenReader(imagePath)
	if err != nil {
		return fail(err)
	}
	defer im.Close()
	passwd, err := im.readIfExists(user.PasswdPath)
	if err != nil {
		return fail(err)
	}
	group, err := im.readIfExists(user.GroupPath)
	if err != nil {
		return fail(err)
	}
	u, err := user.Resolve(spec, passwd, group, nil)
	if err != nil {
		return 0, 0, nil, err
	}
	return u.UID, u.GID, u.Groups, nil
}

// readIfExists returns the content of the file at p (at most 16 MiB) as a
// reader; nil, no error, when the image has no such file.
func (im *Reader) readIfExists(p string) (io.Reader, error) {
	b, err := im.ReadFile(p, 16<<20)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

// FileInfo describes an entry of an ext4 image.
type FileInfo struct {
	Ino   uint32
	Mode  uint32 // st_mode: type bits (S_IFMT) and permission bits
	UID   uint32
	GID   uint32
	Size  int64
	Links int
	Mtime time.Time
	// Target is a symlink's target.
	Target string
	// Major and Minor are a device's numbers.
	Major, Minor uint32
}

// Lstat describes the entry at p inside the image; symlinks in the
// directories leading to it are followed, p itself is not.
func (im *Reader) Lstat(p string) (FileInfo, error) {
	ino, id, err := im.lresolve(p)
	if err != nil {
		return FileInfo{}, fmt.Errorf("lstat %s in ext4 %s: %w", p, im.name, err)
	}
	le := binary.LittleEndian
	fi := FileInfo{
		Ino:   ino,
		Mode:  uint32(id.IMode),
		UID:   uint32(id.IUid) | uint32(le.Uint16(id.Osd2[4:]))<<16,
		GID:   uint32(id.IGid) | uint32(le.Uint16(id.Osd2[6:]))<<16,
		Size:  int64(inodeSize(id)),
		Links: int(id.ILinksCount),
		Mtime: decodeTime(id.IMtime, id.IMtimeExtra),
	}
	switch id.IMode & 0xF000 {
	case 0xA000:
		if fi.Target, err = im.symlinkTarget(id); err != nil {
			return FileInfo{}, fmt.Errorf("lstat %s in ext4 %s: %w", p, im.name, err)
		}
	case 0x2000, 0x6000:
		if old := le.Uint32(id.IBlock[0:]); old != 0 {
			fi.Major, fi.Minor = old>>8&0xff, old&0xff
		} else {
			n := le.Uint32(id.IBlock[4:])
			fi.Major, fi.Minor = n>>8&0xfff, n&0xff|n>>12&0xfff00
		}
	}
	return fi, nil
}

func decodeTime(lo, extra uint32) time.Time {
	sec := int64(int32(lo)) + int64(extra&3)<<32
	return time.Unix(sec, int64(extra>>2))
}

// lresolve resolves p's directory following symlinks and looks its last
// component up without following it.
func (im *Reader) lresolve(p string) (uint32, *goext4.InodeData, error) {
	clean := path.Clean("/" + p)
	if clean == "/" {
		id, err := im.inode(2)
		return 2, id, err
	}
	dirIno, dir, err := im.resolve(path.Dir(clean))
	if err != nil {
		return 0, nil, err
	}
	if dir.IMode&0xF000 != 0x4000 {
		return 0, nil, errdefs.NotFound(fmt.Errorf("%s: not a directory", path.Dir(clean)))
	}
	ino, err := im.lookupChild(dirIno, path.Base(clean))
	if err != nil {
		return 0, nil, err
	}
	id, err := im.inode(ino)
	return ino, id, err
}

// ReadDir returns the names in the directory p (following symlinks),
// without "." and "..", in on-disk order.
func (im *Reader) ReadDir(p string) (names []string, err error) {
	ino, id, err := im.resolve(p)
	if err != nil {
		return nil, fmt.Errorf("readdir %s in ext4 %s: %w", p, im.name, err)
	}
	if id.IMode&0xF000 != 0x4000 {
		return nil, errdefs.InvalidArgument(fmt.Errorf("readdir %s in ext4 %s: not a directory", p, im.name))
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("readdir %s in ext4 %s: %v", p, im.name, r)
		}
	}()
	bgd, err := im.bgdl.GetWithAbsoluteInode(int(ino))
	if err != nil {
		return nil, err
	}
	inode, err := goext4.NewInodeWithReadSeeker(bgd, im.f, int(ino))
	if err != nil {
		return nil, fmt.Errorf("readdir %s in ext4 %s: %w", p, im.name, err)
	}
	db := goext4.NewDirectoryBrowser(im.f, inode)
	for {
		de, err := db.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("readdir %s in ext4 %s: %w", p, im.name, err)
		}
		if n := de.Name(); de.Data().Inode != 0 && n != "." && n != ".." {
			names = append(names, n)
		}
	}
}
