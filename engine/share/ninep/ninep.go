package ninep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"
)

// maxName is the longest name the server accepts (NAME_MAX).
const maxName = 255

// Server serves one host directory over 9P2000.L.
type Server struct {
	root     string
	readOnly bool
	rootFD   int
	closeMu  sync.Mutex
	closed   bool
}

// New opens dir, which must be a directory, for serving. With readOnly,
// every change is refused host-side. Close releases it.
func New(dir string, readOnly bool) (*Server, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("share %s: not a folder: share the folder that holds it", dir)
		}
		return nil, fmt.Errorf("share %s: %w", dir, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	return &Server{root: dir, readOnly: readOnly, rootFD: fd}, nil
}

// Root is the directory being served.
func (s *Server) Root() string { return s.root }

// ReadOnly says whether the share refuses changes.
func (s *Server) ReadOnly() bool { return s.readOnly }

// Serve answers 9P requests on conn until the connection ends or ctx is
// cancelled, then closes conn. Files the guest still holds are released.
func (s *Server) Serve(ctx context.Context, conn io.ReadWriteCloser) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	err := p9.NewServer(attacher{s}).Handle(settleReader{conn}, writeCloser{&messageWriter{w: conn}, conn})
	if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, os.ErrClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("serve share %s: %w", s.root, err)
	}
	return nil
}

// settleReader delays the end of the connection a little: p9 v0.3.0
// starts a goroutine for the next request after each message, and that
// goroutine's WaitGroup.Add can race with the server's final Wait when
// the connection ends at once (the race detector reports it). Letting
// the connection's last read settle first gives that goroutine time to
// start.
type settleReader struct{ io.ReadCloser }

func (r settleReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil {
		time.Sleep(20 * time.Millisecond)
	}
	return n, err
}

// writeCloser is p9's reply side: messages written whole, and the
// connection's Close.
type writeCloser struct {
	io.Writer
	io.Closer
}

// Close releases the root directory. Connections being served end when
// their connection is closed (cancel Serve's context).
func (s *Server) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return unix.Close(s.rootFD)
}

// Attach returns the share's root directory as a p9.File, for serving
// it on a transport other than Serve's.
func (s *Server) Attach() (p9.File, error) { return attacher{s}.Attach() }

type attacher struct{ s *Server }

func (a attacher) Attach() (p9.File, error) {
	a.s.closeMu.Lock()
	defer a.s.closeMu.Unlock()
	if a.s.closed {
		return nil, unix.EBADF
	}
	fd, err := unix.Dup(a.s.rootFD)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	return newFile(a.s, fd, -1, "")
}

// checkName refuses any walk or create name that is not one plain
// component.
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..", strings.ContainsAny(name, "/\x00"):
		return unix.EINVAL
	case len(name) > maxName:
		return unix.ENAMETOOLONG
	}
	return nil
}

// file is one 9P fid: a descriptor for the object (fd), a descriptor for
// the directory it was walked from (parent, -1 for the root) and its
// name there, and once opened, a descriptor for reading and writing.
type file struct {
	s *Server

	mu       sync.Mutex
	fd       int
	parent   int
	name     string
	dev, ino uint64
	mode     uint32 // S_IFMT bits
	io       *os.File
	dirents  p9.Dirents
}

var _ p9.File = (*file)(nil)

func newFile(s *Server, fd, parent int, name string) (*file, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		if parent >= 0 {
			unix.Close(parent)
		}
		return nil, err
	}
	return &file{s: s, fd: fd, parent: parent, name: name, dev: uint64(st.Dev), ino: uint64(st.Ino), mode: uint32(st.Mode) & unix.S_IFMT}, nil
}

func (f *file) isDir() bool { return f.mode == unix.S_IFDIR }

func dupFD(fd int) (int, error) {
	if fd < 0 {
		return -1, nil
	}
	n, err := unix.Dup(fd)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(n)
	return n, nil
}

func qidOf(st *unix.Stat_t) p9.QID {
	return p9.QID{Type: p9.FileMode(st.Mode).QIDType(), Path: uint64(st.Ino)}
}

// Walk implements p9.File.
func (f *file) Walk(names []string) ([]p9.QID, p9.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(names) == 0 {
		fd, err := dupFD(f.fd)
		if err != nil {
			return nil, nil, err
		}
		parent, err := dupFD(f.parent)
		if err != nil {
			unix.Close(fd)
			return nil, nil, err
		}
		nf, err := newFile(f.s, fd, parent, f.name)
		if err != nil {
			return nil, nil, err
		}
		return nil, nf, nil
	}
	var qids []p9.QID
	cur := f
	for _, name := range names {
		next, err := cur.walkOne(name)
		if cur != f {
			cur.Close()
		}
		if err != nil {
			return nil, nil, err
		}
		cur = next
		var st unix.Stat_t
		if err := unix.Fstat(cur.fd, &st); err != nil {
			cur.Close()
			return nil, nil, err
		}
		qids = append(qids, qidOf(&st))
	}
	return qids, cur, nil
}

// walkOne opens name beneath cur, never following a symlink.
func (f *file) walkOne(name string) (*file, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if !f.isDir() {
		return nil, unix.ENOTDIR
	}
	fd, err := openBeneath(f.fd, name, pathFlags, 0)
	if err != nil {
		return nil, err
	}
	parent, err := dupFD(f.fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return newFile(f.s, fd, parent, name)
}

// WalkGetAttr implements p9.File: Walk, then GetAttr of the result.
func (f *file) WalkGetAttr(names []string) ([]p9.QID, p9.File, p9.AttrMask, p9.Attr, error) {
	qids, nf, err := f.Walk(names)
	if err != nil {
		return nil, nil, p9.AttrMask{}, p9.Attr{}, err
	}
	_, mask, attr, err := nf.GetAttr(p9.AttrMaskAll)
	if err != nil {
		nf.Close()
		return nil, nil, p9.AttrMask{}, p9.Attr{}, err
	}
	return qids, nf, mask, attr, nil
}

// reopen opens the walked object again for I/O with flags. A directory
// is reopened through its own descriptor; anything else through its
// parent's, without following symlinks, and it must be the same inode.
func (f *file) reopen(flags int) (int, error) {
	var fd int
	var err error
	if f.isDir() {
		fd, err = openBeneath(f.fd, ".", flags|unix.O_DIRECTORY, 0)
	} else {
		if f.parent < 0 || f.mode == unix.S_IFLNK {
			return -1, unix.ELOOP
		}
		fd, err = openBeneath(f.parent, f.name, flags|unix.O_NONBLOCK, 0)
	}
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if uint64(st.Dev) != f.dev || uint64(st.Ino) != f.ino {
		unix.Close(fd)
		return -1, unix.ESTALE
	}
	if !f.isDir() {
		// O_NONBLOCK only kept a FIFO from blocking the open.
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
			unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
		}
	}
	return fd, nil
}

// StatFS implements p9.File.
func (f *file) StatFS() (p9.FSStat, error) { return statFS(f.fd) }

// GetAttr implements p9.File.
func (f *file) GetAttr(req p9.AttrMask) (p9.QID, p9.AttrMask, p9.Attr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return p9.QID{}, p9.AttrMask{}, p9.Attr{}, err
	}
	attr := p9.Attr{
		Mode:             p9.FileMode(st.Mode),
		UID:              p9.UID(st.Uid),
		GID:              p9.GID(st.Gid),
		NLink:            p9.NLink(st.Nlink),
		RDev:             p9.Dev(st.Rdev),
		Size:             uint64(st.Size),
		BlockSize:        uint64(st.Blksize),
		Blocks:           uint64(st.Blocks),
		ATimeSeconds:     uint64(st.Atim.Sec),
		ATimeNanoSeconds: uint64(st.Atim.Nsec),
		MTimeSeconds:     uint64(st.Mtim.Sec),
		MTimeNanoSeconds: uint64(st.Mtim.Nsec),
		CTimeSeconds:     uint64(st.Ctim.Sec),
		CTimeNanoSeconds: uint64(st.Ctim.Nsec),
	}
	valid := p9.AttrMask{Mode: true, NLink: true, UID: true, GID: true, RDev: true, ATime: true, MTime: true, CTime: true, INo: true, Size: true, Blocks: true}
	return qidOf(&st), valid, attr, nil
}

// SetAttr implements p9.File. Ownership changes are accepted and
// ignored: files stay the host user's.
func (f *file) SetAttr(valid p9.SetAttrMask, attr p9.SetAttr) error {
	if f.s.readOnly {
		return unix.EROFS
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if valid.Permissions && f.mode != unix.S_IFLNK {
		fd, err := f.reopen(unix.O_RDONLY)
		if errors.Is(err, unix.EACCES) {
			fd, err = f.reopen(unix.O_WRONLY)
		}
		if err != nil {
			return err
		}
		err = unix.Fchmod(fd, uint32(attr.Permissions)&0o1777)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	if valid.Size {
		if f.isDir() {
			return unix.EISDIR
		}
		fd, err := f.reopen(unix.O_WRONLY)
		if err != nil {
			return err
		}
		err = unix.Ftruncate(fd, int64(attr.Size))
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	if valid.ATime || valid.MTime {
		ts := []unix.Timespec{{Nsec: utimeOmit}, {Nsec: utimeOmit}}
		if valid.ATime {
			ts[0] = unix.Timespec{Nsec: utimeNow}
			if valid.ATimeNotSystemTime {
				ts[0] = unix.Timespec{Sec: int64(attr.ATimeSeconds), Nsec: int64(attr.ATimeNanoSeconds)}
			}
		}
		if valid.MTime {
			ts[1] = unix.Timespec{Nsec: utimeNow}
			if valid.MTimeNotSystemTime {
				ts[1] = unix.Timespec{Sec: int64(attr.MTimeSeconds), Nsec: int64(attr.MTimeNanoSeconds)}
			}
		}
		var err error
		if f.isDir() {
			err = unix.UtimesNanoAt(f.fd, ".", ts, 0)
		} else {
			// Not following: a symlink swapped in gets its own times set.
			err = unix.UtimesNanoAt(f.parent, f.name, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Close implements p9.File.
func (f *file) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.io != nil {
		f.io.Close()
		f.io = nil
	}
	if f.parent >= 0 {
		unix.Close(f.parent)
		f.parent = -1
	}
	if f.fd >= 0 {
		unix.Close(f.fd)
		f.fd = -1
	}
	return nil
}

// Open implements p9.File.
func (f *file) Open(mode p9.OpenFlags) (p9.QID, uint32, error) {
	if f.s.readOnly && mode.Mode() != p9.ReadOnly {
		return p9.QID{}, 0, unix.EROFS
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fd, err := f.reopen(mode.OSFlags())
	if err != nil {
		return p9.QID{}, 0, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return p9.QID{}, 0, err
	}
	if f.io != nil {
		f.io.Close()
	}
	f.io = os.NewFile(uintptr(fd), f.name)
	return qidOf(&st), 0, nil
}

func (f *file) opened() (*os.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.io == nil {
		return nil, unix.EBADF
	}
	return f.io, nil
}

// ReadAt implements p9.File.
func (f *file) ReadAt(p []byte, offset int64) (int, error) {
	io_, err := f.opened()
	if err != nil {
		return 0, err
	}
	n, err := io_.ReadAt(p, offset)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// WriteAt implements p9.File.
func (f *file) WriteAt(p []byte, offset int64) (int, error) {
	if f.s.readOnly {
		return 0, unix.EROFS
	}
	io_, err := f.opened()
	if err != nil {
		return 0, err
	}
	return io_.WriteAt(p, offset)
}

// FSync implements p9.File.
func (f *file) FSync() error {
	io_, err := f.opened()
	if err != nil {
		return nil
	}
	return io_.Sync()
}

// SetXattr implements p9.File: extended attributes are not shared.
func (f *file) SetXattr(string, []byte, p9.XattrFlags) error { return unix.EOPNOTSUPP }

// GetXattr implements p9.File.
func (f *file) GetXattr(string) ([]byte, error) { return nil, unix.EOPNOTSUPP }

// ListXattrs implements p9.File.
func (f *file) ListXattrs() ([]string, error) { return nil, nil }

// RemoveXattr implements p9.File.
func (f *file) RemoveXattr(string) error { return unix.EOPNOTSUPP }

// Lock implements p9.File: locks are local to the guest.
func (f *file) Lock(int, p9.LockType, p9.LockFlags, uint64, uint64, string) (p9.LockStatus, error) {
	return p9.LockStatusOK, nil
}

func (f *file) dirFD() (int, error) {
	if f.fd < 0 {
		return -1, unix.EBADF
	}
	if !f.isDir() {
		return -1, unix.ENOTDIR
	}
	return f.fd, nil
}

// dupDir returns a duplicate of f's descriptor, which must be a
// directory's, for use outside f's lock (a concurrent Close cannot then
// leave a number that the process reuses for something else).
func (f *file) dupDir() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fd, err := f.dirFD()
	if err != nil {
		return -1, err
	}
	return dupFD(fd)
}

// dupParent returns a duplicate of f's parent descriptor and f's name
// there; the root has no parent (EBUSY).
func (f *file) dupParent() (int, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parent < 0 {
		return -1, "", unix.EBUSY
	}
	fd, err := dupFD(f.parent)
	return fd, f.name, err
}

// createMode is a mode the guest asked for, without set-ID bits.
func createMode(m p9.FileMode) uint32 { return uint32(m.Permissions()) & 0o1777 }

// Create implements p9.File.
func (f *file) Create(name string, flags p9.OpenFlags, perm p9.FileMode, _ p9.UID, _ p9.GID) (p9.File, p9.QID, uint32, error) {
	if f.s.readOnly {
		return nil, p9.QID{}, 0, unix.EROFS
	}
	if err := checkName(name); err != nil {
		return nil, p9.QID{}, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, err := f.dirFD()
	if err != nil {
		return nil, p9.QID{}, 0, err
	}
	fd, err := openBeneath(dir, name, flags.OSFlags()|unix.O_CREAT|unix.O_EXCL, createMode(perm))
	if err != nil {
		return nil, p9.QID{}, 0, err
	}
	walkFD, err := dupFD(fd)
	if err != nil {
		unix.Close(fd)
		return nil, p9.QID{}, 0, err
	}
	parent, err := dupFD(dir)
	if err != nil {
		unix.Close(fd)
		unix.Close(walkFD)
		return nil, p9.QID{}, 0, err
	}
	nf, err := newFile(f.s, walkFD, parent, name)
	if err != nil {
		unix.Close(fd)
		return nil, p9.QID{}, 0, err
	}
	nf.io = os.NewFile(uintptr(fd), name)
	return nf, p9.QID{Type: p9.TypeRegular, Path: nf.ino}, 0, nil
}

func (f *file) qidAt(dir int, name string) (p9.QID, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return p9.QID{}, err
	}
	return qidOf(&st), nil
}

// Mkdir implements p9.File.
func (f *file) Mkdir(name string, perm p9.FileMode, _ p9.UID, _ p9.GID) (p9.QID, error) {
	if f.s.readOnly {
		return p9.QID{}, unix.EROFS
	}
	if err := checkName(name); err != nil {
		return p9.QID{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, err := f.dirFD()
	if err != nil {
		return p9.QID{}, err
	}
	if err := unix.Mkdirat(dir, name, createMode(perm)); err != nil {
		return p9.QID{}, err
	}
	return f.qidAt(dir, name)
}

// Symlink implements p9.File. The link's text is stored as given; the
// server never follows it.
func (f *file) Symlink(oldName, newName string, _ p9.UID, _ p9.GID) (p9.QID, error) {
	if f.s.readOnly {
		return p9.QID{}, unix.EROFS
	}
	if err := checkName(newName); err != nil {
		return p9.QID{}, err
	}
	if strings.ContainsRune(oldName, 0) {
		return p9.QID{}, unix.EINVAL
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, err := f.dirFD()
	if err != nil {
		return p9.QID{}, err
	}
	if err := unix.Symlinkat(oldName, dir, newName); err != nil {
		return p9.QID{}, err
	}
	return f.qidAt(dir, newName)
}

// Link implements p9.File.
func (f *file) Link(target p9.File, newName string) error {
	if f.s.readOnly {
		return unix.EROFS
	}
	if err := checkName(newName); err != nil {
		return err
	}
	t, ok := target.(*file)
	if !ok || t == f || t.s != f.s {
		return unix.EXDEV
	}
	tParent, tName, err := t.dupParent()
	if err != nil {
		return unix.EPERM
	}
	defer unix.Close(tParent)
	dir, err := f.dupDir()
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	return unix.Linkat(tParent, tName, dir, newName, 0)
}

// Mknod implements p9.File: only FIFOs; no device nodes in a shared
// folder.
func (f *file) Mknod(name string, mode p9.FileMode, _, _ uint32, _ p9.UID, _ p9.GID) (p9.QID, error) {
	if f.s.readOnly {
		return p9.QID{}, unix.EROFS
	}
	if err := checkName(name); err != nil {
		return p9.QID{}, err
	}
	if !mode.IsNamedPipe() {
		return p9.QID{}, unix.EPERM
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, err := f.dirFD()
	if err != nil {
		return p9.QID{}, err
	}
	if err := mkfifoAt(dir, name, createMode(mode)); err != nil {
		return p9.QID{}, err
	}
	return f.qidAt(dir, name)
}

// Rename implements p9.File.
func (f *file) Rename(newDir p9.File, newName string) error {
	if f.s.readOnly {
		return unix.EROFS
	}
	if err := checkName(newName); err != nil {
		return err
	}
	nd, ok := newDir.(*file)
	if !ok || nd.s != f.s {
		return unix.EXDEV
	}
	parent, name, err := f.dupParent()
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	to, err := nd.dupDir()
	if err != nil {
		return err
	}
	defer unix.Close(to)
	return unix.Renameat(parent, name, to, newName)
}

// RenameAt implements p9.File.
func (f *file) RenameAt(oldName string, newDir p9.File, newName string) error {
	if f.s.readOnly {
		return unix.EROFS
	}
	if err := checkName(oldName); err != nil {
		return err
	}
	if err := checkName(newName); err != nil {
		return err
	}
	nd, ok := newDir.(*file)
	if !ok || nd.s != f.s {
		return unix.EXDEV
	}
	from, err := f.dupDir()
	if err != nil {
		return err
	}
	defer unix.Close(from)
	to, err := nd.dupDir()
	if err != nil {
		return err
	}
	defer unix.Close(to)
	return unix.Renameat(from, oldName, to, newName)
}

// linuxRemoveDir is AT_REMOVEDIR as the Linux guest sends it.
const linuxRemoveDir = 0x200

// UnlinkAt implements p9.File.
func (f *file) UnlinkAt(name string, flags uint32) error {
	if f.s.readOnly {
		return unix.EROFS
	}
	if err := checkName(name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, err := f.dirFD()
	if err != nil {
		return err
	}
	var uf int
	if flags&linuxRemoveDir != 0 {
		uf = unix.AT_REMOVEDIR
	}
	return unix.Unlinkat(dir, name, uf)
}

// Readdir implements p9.File. Offsets are positions in the directory as
// listed when the guest started reading it (offset 0).
func (f *file) Readdir(offset uint64, count uint32) (p9.Dirents, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, err := f.dirFD()
	if err != nil {
		return nil, err
	}
	if offset == 0 || f.dirents == nil {
		fd, err := openBeneath(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return nil, err
		}
		d := os.NewFile(uintptr(fd), f.name)
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return nil, err
		}
		ents := make(p9.Dirents, 0, len(names))
		for _, n := range names {
			var st unix.Stat_t
			if err := unix.Fstatat(dir, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				continue // removed since listed
			}
			q := qidOf(&st)
			ents = append(ents, p9.Dirent{QID: q, Offset: uint64(len(ents) + 1), Type: q.Type, Name: n})
		}
		f.dirents = ents
	}
	if offset >= uint64(len(f.dirents)) {
		return nil, nil
	}
	out := f.dirents[offset:]
	// A dirent takes at least 24 bytes on the wire; the server trims the
	// rest to count.
	if max := int(count/24) + 1; len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// Readlink implements p9.File.
func (f *file) Readlink() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode != unix.S_IFLNK || f.parent < 0 {
		return "", unix.EINVAL
	}
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(f.parent, f.name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Renamed implements p9.File: the server tells a walked file its new
// place after a rename.
func (f *file) Renamed(newDir p9.File, newName string) {
	nd, ok := newDir.(*file)
	if !ok {
		return
	}
	nd.mu.Lock()
	parent, err := dupFD(nd.fd)
	nd.mu.Unlock()
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parent >= 0 {
		unix.Close(f.parent)
	}
	f.parent, f.name = parent, newName
}
