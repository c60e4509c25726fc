// Package ext4 writes ext4 filesystem images in pure Go.
//
// A Writer keeps the directory tree (metadata only) in memory while the
// contents of regular files stream straight into data blocks of the output
// file. Entries can be added, replaced and removed in any order, which is
// what applying OCI image layers needs. Close lays out inode tables,
// directories, extent trees, xattr blocks, bitmaps, group descriptors, the
// superblock and a JBD2 journal after the data, and leaves the image sparse.
//
// The images use 4 KiB blocks, 256-byte inodes, 32768 blocks per group and
// the features filetype, extents, flex_bg, 64bit, large_file, huge_file,
// dir_nlink, extra_isize, ext_attr, sparse_super2 and has_journal. The Linux
// kernel mounts them read-write and `e2fsck -fn` accepts them.
//
// Layout: block 0 holds the superblock, then room for the group
// descriptors of the largest size the image may grow to (1 TiB, or the
// WithSize given when larger);
// file data follows in the order it was written, then, placed by Close,
// all block bitmaps, all inode bitmaps, all inode tables (flex_bg lets them
// sit anywhere), directory blocks, extent tree blocks, xattr blocks and the
// journal. Inodes are numbered depth-first in name order, so the same
// sequence of calls gives a byte-identical image when WithUUID and
// WithTimestamp fix the only other inputs.
//
// Not done yet: hashed directories (dir_index; linear directories are
// valid and the kernel reads them), metadata checksums (metadata_csum),
// superblock backups (sparse_super2 with none), inline data. Blocks of
// removed entries are free in the filesystem and punched out of the file
// on Linux, but the writer does not reuse them for later data.
package ext4

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
)

// Version identifies the on-disk layout this package writes. Caches of
// images keyed by content should include it in their key.
const Version = "1"

// FileType is the type of a filesystem entry.
type FileType uint8

// The entry types an ext4 directory can hold.
const (
	TypeRegular FileType = iota + 1
	TypeDir
	TypeSymlink
	TypeCharDevice
	TypeBlockDevice
	TypeFIFO
	TypeSocket
)

// String returns the lower-case name of the type.
func (t FileType) String() string {
	switch t {
	case TypeRegular:
		return "regular file"
	case TypeDir:
		return "directory"
	case TypeSymlink:
		return "symlink"
	case TypeCharDevice:
		return "character device"
	case TypeBlockDevice:
		return "block device"
	case TypeFIFO:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return fmt.Sprintf("FileType(%d)", uint8(t))
}

func (t FileType) ifmt() uint16 {
	switch t {
	case TypeRegular:
		return sIFREG
	case TypeDir:
		return sIFDIR
	case TypeSymlink:
		return sIFLNK
	case TypeCharDevice:
		return sIFCHR
	case TypeBlockDevice:
		return sIFBLK
	case TypeFIFO:
		return sIFIFO
	case TypeSocket:
		return sIFSOCK
	}
	return 0
}

// Metadata is what an entry carries besides its type and content.
type Metadata struct {
	// Mode holds the permission bits including setuid, setgid and sticky
	// (mask 07777); other bits are ignored.
	Mode uint32
	// UID and GID are the 32-bit owner and group.
	UID, GID uint32
	// Mtime is the modification time. Atime and Ctime default to Mtime
	// when zero; a zero Mtime means the Writer's timestamp.
	Atime, Mtime, Ctime time.Time
	// Xattrs maps full attribute names ("user.x", "security.capability",
	// "trusted.x", "system.posix_acl_access") to values. See XattrSupported.
	Xattrs map[string][]byte
}

// Info describes an entry of the tree being written.
type Info struct {
	Type     FileType
	Mode     uint32 // permission bits, 07777
	UID, GID uint32
	Size     int64  // regular files: content length; symlinks: target length
	Target   string // symlink target
	Major    uint32 // devices
	Minor    uint32
	Mtime    time.Time
	Xattrs   map[string][]byte
	Links    int // number of directory entries naming a non-directory
}

type extent struct {
	logical  uint32 // first logical block
	physical uint64 // first physical block
	length   uint32 // blocks, at most maxExtentLen
}

type node struct {
	typ      FileType
	mode     uint16 // permission bits
	uid, gid uint32
	atime    time.Time
	mtime    time.Time
	ctime    time.Time
	size     int64
	extents  []extent // regular files, slow symlinks
	children map[string]*node
	target   string // symlinks
	major    uint32
	minor    uint32
	xattrs   []xattr // sorted on-disk order
	refs     int     // directory entries naming this node
	ino      uint32  // assigned at Close
}

// Option configures a Writer.
type Option func(*options)

type options struct {
	size        int64
	minFree     int64
	minInodes   uint32
	maxSize     int64
	now         time.Time
	uuid        [16]byte
	uuidSet     bool
	bufferBytes int
}

// WithSize fixes the size of the image in bytes (rounded down to 4 KiB).
// Close fails with an invalid-argument error when the content does not fit.
// Without it the image is sized to its content plus free space (see
// WithMinFree and WithMinFreeInodes).
func WithSize(bytes int64) Option { return func(o *options) { o.size = bytes } }

// WithMinFree sets the free space, in bytes, an image sized to its content
// keeps for the writes of its user. The default is 1 GiB plus half the
// size of the content.
func WithMinFree(bytes int64) Option { return func(o *options) { o.minFree = bytes } }

// WithMinFreeInodes sets the number of free inodes the image keeps at
// least. The default is 16384 plus half the number of inodes used. The
// image also has one inode per 16 KiB of its size.
func WithMinFreeInodes(n uint32) Option { return func(o *options) { o.minInodes = n } }

// WithTimestamp sets the time written into the superblock and given to
// entries whose Metadata has no Mtime. The default is the time of NewWriter.
func WithTimestamp(t time.Time) Option { return func(o *options) { o.now = t } }

// WithUUID sets the filesystem UUID. The default is random.
func WithUUID(u [16]byte) Option { return func(o *options) { o.uuid = u; o.uuidSet = true } }

// Writer builds one ext4 image. Its methods must not be called concurrently.
type Writer struct {
	f     *os.File
	name  string
	owned bool
	opts  options

	root      *node
	dataStart uint64 // first block the data area may use
	next      uint64 // next free block of the data area
	buf       []byte // pending data, starting at block bufStart
	bufStart  uint64
	scratch   []byte
	freed     []extent // data blocks of removed entries
	fsUUID    [16]byte
	closed    bool
	err       error // sticky write error
}

const (
	blockSize      = 4096
	blockBits      = 12
	inodeSize      = 256
	blocksPerGroup = 32768
	inodeRatio     = 16384
	rootIno        = 2
	journalIno     = 8
	lostFoundIno   = 11
	firstIno       = 11
	extraIsize     = 32
	descSize       = 64
	maxExtentLen   = 32768
	maxLinks       = 65000
	maxNameLen     = 255
	maxSymlinkLen  = blockSize - 1
	fastSymlinkMax = 60 // targets shorter than this live in the inode

	sIFIFO  = 0o010000
	sIFCHR  = 0o020000
	sIFDIR  = 0o040000
	sIFBLK  = 0o060000
	sIFREG  = 0o100000
	sIFLNK  = 0o120000
	sIFSOCK = 0o140000
)

// Create creates (or truncates) the image file at path and returns a
// Writer for it. Close closes the file.
func Create(path string, opts ...Option) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create ext4 %s: %w", path, err)
	}
	w, err := NewWriter(f, opts...)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.owned = true
	return w, nil
}

// NewWriter returns a Writer that writes an image into f, which must be
// empty and open for reading and writing. Close does not close f.
func NewWriter(f *os.File, opts ...Option) (*Writer, error) {
	// maxSize is the largest size the image may ever be given (by WithSize
	// or by growing it later): space for the group descriptors of that
	// size, 512 KiB for 1 TiB, is kept after the superblock.
	o := options{maxSize: 1 << 40, minFree: -1, bufferBytes: 8 << 20}
	for _, opt := range opts {
		opt(&o)
	}
	if o.now.IsZero() {
		o.now = time.Now()
	}
	if o.size > o.maxSize {
		o.maxSize = o.size
	}
	if o.size != 0 && o.size < 4<<20 {
		return nil, errdefs.InvalidArgument(fmt.Errorf("create ext4 %s: size %d below the 4 MiB minimum", f.Name(), o.size))
	}
	groups := ceilDiv(uint64(o.maxSize)/blockSize, blocksPerGroup)
	gdtBlocks := ceilDiv(groups*descSize, blockSize)
	var err error
	w := &Writer{
		f:         f,
		name:      f.Name(),
		opts:      o,
		dataStart: 1 + gdtBlocks,
		scratch:   make([]byte, 1<<20),
	}
	w.next = w.dataStart
	if w.fsUUID, err = w.uuid(); err != nil {
		return nil, fmt.Errorf("create ext4 %s: uuid: %w", f.Name(), err)
	}
	w.bufStart = w.next
	w.root = w.newNode(TypeDir, Metadata{Mode: 0o755})
	w.root.refs = 1
	lf := w.newNode(TypeDir, Metadata{Mode: 0o700})
	lf.refs = 1
	w.root.children["lost+found"] = lf
	return w, nil
}

func (w *Writer) newNode(t FileType, md Metadata) *node {
	n := &node{typ: t}
	w.setMeta(n, md)
	if t == TypeDir {
		n.children = make(map[string]*node)
	}
	return n
}

func (w *Writer) setMeta(n *node, md Metadata) {
	n.mode = uint16(md.Mode & 0o7777)
	n.uid, n.gid = md.UID, md.GID
	n.mtime = md.Mtime
	if n.mtime.IsZero() {
		n.mtime = w.opts.now
	}
	n.atime, n.ctime = md.Atime, md.Ctime
	if n.atime.IsZero() {
		n.atime = n.mtime
	}
	if n.ctime.IsZero() {
		n.ctime = n.mtime
	}
}

func (w *Writer) errorf(op, p string, format string, args ...any) error {
	return fmt.Errorf("%s %s in ext4 %s: %s", op, p, w.name, fmt.Sprintf(format, args...))
}

func (w *Writer) check(op, p string) error {
	if w.closed {
		return w.errorf(op, p, "writer closed")
	}
	if w.err != nil {
		return fmt.Errorf("%s %s in ext4 %s: earlier write failed: %w", op, p, w.name, w.err)
	}
	return nil
}

// splitPath cleans p and returns its components. The root is no components.
func splitPath(p string) ([]string, error) {
	p = path.Clean("/" + p)
	if p == "/" {
		return nil, nil
	}
	parts := strings.Split(p[1:], "/")
	for _, c := range parts {
		if len(c) > maxNameLen {
			return nil, fmt.Errorf("name %.32q... longer than %d bytes", c, maxNameLen)
		}
		if strings.IndexByte(c, 0) >= 0 {
			return nil, fmt.Errorf("name %q holds a NUL byte", c)
		}
	}
	return parts, nil
}

// walk returns the node at the components, without following symlinks.
func (w *Writer) walk(parts []string) (*node, error) {
	n := w.root
	for i, c := range parts {
		if n.typ != TypeDir {
			return nil, errdefs.NotFound(fmt.Errorf("/%s is a %s, not a directory", strings.Join(parts[:i], "/"), n.typ))
		}
		child, ok := n.children[c]
		if !ok {
			return nil, errdefs.NotFound(fmt.Errorf("no such file or directory"))
		}
		n = child
	}
	return n, nil
}

// parentOf returns the directory that holds the last component.
func (w *Writer) parentOf(op, p string) (*node, string, error) {
	parts, err := splitPath(p)
	if err != nil {
		return nil, "", errdefs.InvalidArgument(w.errorf(op, p, "%v", err))
	}
	if len(parts) == 0 {
		return nil, "", nil
	}
	dir, err := w.walk(parts[:len(parts)-1])
	if err != nil {
		return nil, "", fmt.Errorf("%s %s in ext4 %s: parent: %w", op, p, w.name, err)
	}
	if dir.typ != TypeDir {
		return nil, "", errdefs.NotFound(w.errorf(op, p, "parent is a %s, not a directory", dir.typ))
	}
	return dir, parts[len(parts)-1], nil
}

// place puts n at name in dir, replacing what was there.
func (w *Writer) place(dir *node, name string, n *node) {
	if old, ok := dir.children[name]; ok {
		w.release(old)
	}
	n.refs++
	dir.children[name] = n
}

// release drops one reference to n and, when none is left, the references
// n holds (a directory's children) and its data blocks.
func (w *Writer) release(n *node) {
	n.refs--
	if n.refs > 0 {
		return
	}
	for _, c := range n.children {
		w.release(c)
	}
	n.children = nil
	w.freed = append(w.freed, n.extents...)
	n.extents = nil
}

func (w *Writer) validateXattrs(op, p string, md Metadata) ([]xattr, error) {
	xs, err := buildXattrs(md.Xattrs)
	if err != nil {
		return nil, errdefs.InvalidArgument(w.errorf(op, p, "%v", err))
	}
	return xs, nil
}

// Mkdir creates the directory p, whose parent must exist. If p is already
// a directory its metadata is replaced and its entries are kept; anything
// else at p is replaced.
func (w *Writer) Mkdir(ctx context.Context, p string, md Metadata) error {
	const op = "mkdir"
	if err := w.check(op, p); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s in ext4 %s: %w", op, p, w.name, err)
	}
	xs, err := w.validateXattrs(op, p, md)
	if err != nil {
		return err
	}
	dir, name, err := w.parentOf(op, p)
	if err != nil {
		return err
	}
	var n *node
	if dir == nil {
		n = w.root
	} else if old, ok := dir.children[name]; ok && old.typ == TypeDir {
		n = old
	}
	if n != nil {
		w.setMeta(n, md)
		n.xattrs = xs
		return nil
	}
	n = w.newNode(TypeDir, md)
	n.xattrs = xs
	w.place(dir, name, n)
	return nil
}

// reservedCheck refuses to put a non-directory at /lost+found, which e2fsck
// needs to be a directory.
func (w *Writer) reservedCheck(op, p string, dir *node, name string) error {
	if dir == nil {
		return errdefs.InvalidArgument(w.errorf(op, p, "the root can only be a directory"))
	}
	if dir == w.root && name == "lost+found" {
		return errdefs.InvalidArgument(w.errorf(op, p, "/lost+found can only be a directory"))
	}
	return nil
}

// WriteFile creates the regular file p with size bytes read from r,
// replacing what was at p. Blocks of zeros become holes. The data goes to
// the image file as it is read; memory use does not depend on size.
func (w *Writer) WriteFile(ctx context.Context, p string, md Metadata, r io.Reader, size int64) error {
	const op = "write"
	if err := w.check(op, p); err != nil {
		return err
	}
	if size < 0 || uint64(size) > uint64(1<<32-1)*blockSize {
		return errdefs.InvalidArgument(w.errorf(op, p, "size %d out of range", size))
	}
	xs, err := w.validateXattrs(op, p, md)
	if err != nil {
		return err
	}
	dir, name, err := w.parentOf(op, p)
	if err != nil {
		return err
	}
	if err := w.reservedCheck(op, p, dir, name); err != nil {
		return err
	}
	n := w.newNode(TypeRegular, md)
	n.xattrs = xs
	n.size = size
	if err := w.writeData(ctx, n, r, size); err != nil {
		w.freed = append(w.freed, n.extents...)
		return fmt.Errorf("%s %s in ext4 %s: %w", op, p, w.name, err)
	}
	w.place(dir, name, n)
	return nil
}

// Symlink creates the symbolic link p pointing to target, replacing what
// was at p.
func (w *Writer) Symlink(ctx context.Context, p, target string, md Metadata) error {
	const op = "symlink"
	if err := w.check(op, p); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s in ext4 %s: %w", op, p, w.name, err)
	}
	if len(target) == 0 || len(target) > maxSymlinkLen {
		return errdefs.InvalidArgument(w.errorf(op, p, "target length %d not in 1..%d", len(target), maxSymlinkLen))
	}
	xs, err := w.validateXattrs(op, p, md)
	if err != nil {
		return err
	}
	dir, name, err := w.parentOf(op, p)
	if err != nil {
		return err
	}
	if err := w.reservedCheck(op, p, dir, name); err != nil {
		return err
	}
	n := w.newNode(TypeSymlink, md)
	n.mode = 0o777
	n.xattrs = xs
	n.target = target
	n.size = int64(len(target))
	if len(target) >= fastSymlinkMax {
		if err := w.writeData(ctx, n, strings.NewReader(target), n.size); err != nil {
			w.freed = append(w.freed, n.extents...)
			return fmt.Errorf("%s %s in ext4 %s: %w", op, p, w.name, err)
		}
	}
	w.place(dir, name, n)
	return nil
}

// Mknod creates a device node, FIFO or socket at p, replacing what was
// there. major and minor are used for devices only.
func (w *Writer) Mknod(ctx context.Context, p string, t FileType, major, minor uint32, md Metadata) error {
	const op = "mknod"
	if err := w.check(op, p); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s in ext4 %s: %w", op, p, w.name, err)
	}
	switch t {
	case TypeCharDevice, TypeBlockDevice:
		if major >= 1<<12 || minor >= 1<<20 {
			return errdefs.InvalidArgument(w.errorf(op, p, "device %d:%d out of range", major, minor))
		}
	case TypeFIFO, TypeSocket:
		major, minor = 0, 0
	default:
		return errdefs.InvalidArgument(w.errorf(op, p, "type %s is not a node type", t))
	}
	xs, err := w.validateXattrs(op, p, md)
	if err != nil {
		return err
	}
	dir, name, err := w.parentOf(op, p)
	if err != nil {
		return err
	}
	if err := w.reservedCheck(op, p, dir, name); err != nil {
		return err
	}
	n := w.newNode(t, md)
	n.xattrs = xs
	n.major, n.minor = major, minor
	w.place(dir, name, n)
	return nil
}

// Link makes p a hard link to the existing non-directory target (no
// symlinks followed), replacing what was at p.
func (w *Writer) Link(ctx context.Context, p, target string) error {
	const op = "link"
	if err := w.check(op, p); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s in ext4 %s: %w", op, p, w.name, err)
	}
	tparts, err := splitPath(target)
	if err != nil {
		return errdefs.InvalidArgument(w.errorf(op, p, "target: %v", err))
	}
	tn, err := w.walk(tparts)
	if err != nil {
		return fmt.Errorf("%s %s in ext4 %s: target %s: %w", op, p, w.name, target, err)
	}
	if tn.typ == TypeDir {
		return errdefs.InvalidArgument(w.errorf(op, p, "target %s is a directory", target))
	}
	if tn.refs >= maxLinks {
		return errdefs.InvalidArgument(w.errorf(op, p, "target %s has %d links already", target, tn.refs))
	}
	dir, name, err := w.parentOf(op, p)
	if err != nil {
		return err
	}
	if err := w.reservedCheck(op, p, dir, name); err != nil {
		return err
	}
	if dir.children[name] == tn {
		return nil
	}
	w.place(dir, name, tn)
	return nil
}

// Remove deletes p and, for a directory, everything below it. Removing
// the root or /lost+found empties it instead. It returns a not-found error
// when p does not exist.
func (w *Writer) Remove(ctx context.Context, p string) error {
	const op = "remove"
	if err := w.check(op, p); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s in ext4 %s: %w", op, p, w.name, err)
	}
	dir, name, err := w.parentOf(op, p)
	if err != nil {
		return err
	}
	if dir == nil || (dir == w.root && name == "lost+found") {
		target := w.root
		if dir != nil {
			target = dir.children[name]
		}
		for cname, c := range target.children {
			if target == w.root && cname == "lost+found" {
				continue
			}
			w.release(c)
			delete(target.children, cname)
		}
		return nil
	}
	n, ok := dir.children[name]
	if !ok {
		return errdefs.NotFound(w.errorf(op, p, "no such file or directory"))
	}
	delete(dir.children, name)
	w.release(n)
	return nil
}

// Lookup describes the entry at p without following symlinks.
func (w *Writer) Lookup(p string) (Info, error) {
	parts, err := splitPath(p)
	if err != nil {
		return Info{}, errdefs.InvalidArgument(w.errorf("lookup", p, "%v", err))
	}
	n, err := w.walk(parts)
	if err != nil {
		return Info{}, fmt.Errorf("lookup %s in ext4 %s: %w", p, w.name, err)
	}
	info := Info{
		Type: n.typ, Mode: uint32(n.mode), UID: n.uid, GID: n.gid, Size: n.size,
		Target: n.target, Major: n.major, Minor: n.minor, Mtime: n.mtime, Links: n.refs,
	}
	if len(n.xattrs) > 0 {
		info.Xattrs = make(map[string][]byte, len(n.xattrs))
		for _, x := range n.xattrs {
			v := x.value
			if x.index == xattrIndexACLAccess || x.index == xattrIndexACLDefault {
				v, _ = aclFromDisk(v)
			}
			info.Xattrs[x.fullName()] = v
		}
	}
	return info, nil
}

// ReadDir returns the names in directory p, in no particular order.
func (w *Writer) ReadDir(p string) ([]string, error) {
	parts, err := splitPath(p)
	if err != nil {
		return nil, errdefs.InvalidArgument(w.errorf("readdir", p, "%v", err))
	}
	n, err := w.walk(parts)
	if err != nil {
		return nil, fmt.Errorf("readdir %s in ext4 %s: %w", p, w.name, err)
	}
	if n.typ != TypeDir {
		return nil, errdefs.InvalidArgument(w.errorf("readdir", p, "not a directory"))
	}
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	return names, nil
}

// Abort stops writing: the image is left incomplete and, when the Writer
// was made by Create, the file is closed and removed.
func (w *Writer) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if !w.owned {
		return nil
	}
	err := w.f.Close()
	if rerr := os.Remove(w.name); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }
