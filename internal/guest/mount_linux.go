package guest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/share/portsync"
)

// mountFlags are the -o options mount(8) turns into flags.
var mountFlags = map[string]struct {
	set   bool
	flags uintptr
}{
	"ro": {true, unix.MS_RDONLY}, "rw": {false, unix.MS_RDONLY},
	"nosuid": {true, unix.MS_NOSUID}, "suid": {false, unix.MS_NOSUID},
	"nodev": {true, unix.MS_NODEV}, "dev": {false, unix.MS_NODEV},
	"noexec": {true, unix.MS_NOEXEC}, "exec": {false, unix.MS_NOEXEC},
	"sync": {true, unix.MS_SYNCHRONOUS}, "async": {false, unix.MS_SYNCHRONOUS},
	"noatime": {true, unix.MS_NOATIME}, "atime": {false, unix.MS_NOATIME},
	"nodiratime": {true, unix.MS_NODIRATIME}, "relatime": {true, unix.MS_RELATIME},
	"strictatime": {true, unix.MS_STRICTATIME}, "remount": {true, unix.MS_REMOUNT},
	"bind": {true, unix.MS_BIND}, "rbind": {true, unix.MS_BIND | unix.MS_REC},
	"private": {true, unix.MS_PRIVATE}, "rprivate": {true, unix.MS_PRIVATE | unix.MS_REC},
	"shared": {true, unix.MS_SHARED}, "rshared": {true, unix.MS_SHARED | unix.MS_REC},
	"slave": {true, unix.MS_SLAVE}, "rslave": {true, unix.MS_SLAVE | unix.MS_REC},
}

// ParseMountOptions splits mount(8) -o options (each element may hold
// several, comma-separated) into mount(2) flags and filesystem data:
// "ro,noatime,discard" is MS_RDONLY|MS_NOATIME and "discard". guestinit
// reads berth.rootflags with it too.
func ParseMountOptions(opts ...string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range opts {
		for _, o := range strings.Split(o, ",") {
			if o == "" || o == "defaults" {
				continue
			}
			if f, ok := mountFlags[o]; ok {
				if f.set {
					flags |= f.flags
				} else {
					flags &^= f.flags
				}
				continue
			}
			data = append(data, o)
		}
	}
	return flags, strings.Join(data, ",")
}

// inRootfs checks that target names a path inside the rootfs: absolute,
// and with no ".." that climbs out. Symlinks are resolved later, inside
// the rootfs (openat2 RESOLVE_IN_ROOT).
func inRootfs(target string) (string, error) {
	if !filepath.IsAbs(target) {
		return "", errdefs.InvalidArgument(fmt.Errorf("path %q is not absolute", target))
	}
	rel := strings.TrimPrefix(target, "/")
	if rel == "" {
		return ".", nil
	}
	if !filepath.IsLocal(rel) {
		return "", errdefs.InvalidArgument(fmt.Errorf("path %q is outside the container rootfs", target))
	}
	return rel, nil
}

// openInRoot opens rel (O_PATH) with every symlink resolved inside root.
func openInRoot(root, rel string) (int, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(rfd)
	return unix.Openat2(rfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// resolveInRoot returns the path, free of symlinks, that rel names
// inside root (symlinks resolved inside root), for code that must then
// use paths.
func resolveInRoot(root, rel string) (string, error) {
	fd, err := openInRoot(root, rel)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return os.Readlink(fdPath(fd))
}

// fdPath is the /proc path of descriptor fd, for calls that take a path.
func fdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// mkdirInRoot creates rel and its parents inside root, resolving each
// existing component inside root.
func mkdirInRoot(root, rel string) error {
	cur := "."
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part == "." {
			continue
		}
		next := filepath.Join(cur, part)
		fd, err := openInRoot(root, next)
		if err == nil {
			unix.Close(fd)
			cur = next
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
		pfd, err := openInRoot(root, cur)
		if err != nil {
			return err
		}
		err = unix.Mkdirat(pfd, part, 0o755)
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		cur = next
	}
	return nil
}

// mount mounts r.Source on r.Target inside the rootfs. Containers started
// later see it; running ones too, where the rootfs mount is shared (the
// containers' mounts are its slaves).
func (s *Server) mount(r *agentpb.MountRequest) error {
	if r.Share {
		return s.mountShare(r)
	}
	if r.Source == "" && r.Fstype == "" {
		return errdefs.InvalidArgument(errors.New("mount: no source and no filesystem type"))
	}
	rel, err := inRootfs(r.Target)
	if err != nil {
		return fmt.Errorf("mount on %s: %w", r.Target, err)
	}
	if r.MkdirTarget {
		if err := mkdirInRoot(s.cfg.Rootfs, rel); err != nil {
			return fmt.Errorf("mount on %s: create target: %w", r.Target, err)
		}
	}
	flags, data := ParseMountOptions(r.Options...)
	if rel == "." && flags&unix.MS_RDONLY != 0 {
		// The rootfs is becoming read-only: create the mount points
		// containers need while it can still be written.
		if err := makeMountPoints(s.cfg.Rootfs); err != nil {
			return fmt.Errorf("mount on %s: %w", r.Target, err)
		}
	}
	fd, err := openInRoot(s.cfg.Rootfs, rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return errdefs.NotFound(fmt.Errorf("mount on %s: target does not exist in the rootfs", r.Target))
		}
		return fmt.Errorf("mount on %s: %w", r.Target, err)
	}
	defer unix.Close(fd)
	s.waitLateModules(r.Fstype)
	src := r.Source
	if src == "" {
		src = r.Fstype
	}
	if err := unix.Mount(src, fdPath(fd), r.Fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", src, r.Fstype, r.Target, err)
	}
	return nil
}

// unmount unmounts r.Target inside the rootfs.
func (s *Server) unmount(r *agentpb.UnmountRequest) error {
	rel, err := inRootfs(r.Target)
	if err != nil {
		return fmt.Errorf("unmount %s: %w", r.Target, err)
	}
	if rel == "." {
		return errdefs.InvalidArgument(fmt.Errorf("unmount %s: refusing to unmount the rootfs itself", r.Target))
	}
	fd, err := openInRoot(s.cfg.Rootfs, rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return errdefs.NotFound(fmt.Errorf("unmount %s: no such path in the rootfs", r.Target))
		}
		return fmt.Errorf("unmount %s: %w", r.Target, err)
	}
	// Unmount by the resolved path: umount2 on /proc/self/fd would act on
	// the magic link, not the mount.
	path, err := os.Readlink(fdPath(fd))
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("unmount %s: %w", r.Target, err)
	}
	flags := 0
	if r.Lazy {
		flags = unix.MNT_DETACH
	}
	if err := unix.Unmount(path, flags); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return errdefs.InvalidArgument(fmt.Errorf("unmount %s: not a mount point", r.Target))
		}
		return fmt.Errorf("unmount %s: %w", r.Target, err)
	}
	if r.ShareSource != "" {
		return s.unstageShare(r.ShareSource)
	}
	return nil
}

// lateFilesystem reports whether guestinit loads fstype's module after
// the agent serves.
func lateFilesystem(fstype string) bool {
	switch fstype {
	case "9p", "virtiofs", "overlay":
		return true
	}
	return false
}

// waitLateModules waits (at most 30 s) for the late modules before a
// mount of a filesystem they provide.
func (s *Server) waitLateModules(fstype string) {
	if s.cfg.LateModules == nil || !lateFilesystem(fstype) {
		return
	}
	select {
	case <-s.cfg.LateModules:
	case <-time.After(30 * time.Second):
		s.logger.Printf("mount %s: late kernel modules still loading after 30s; trying anyway", fstype)
	}
}

// mountShare mounts one of the container's shares (MountRequest.share):
//   - stages r.Source (r.Fstype, with the filesystem data of r.Options)
//     once, at ShareStaging/SOURCE, outside the rootfs;
//   - with r.CopyUp, copies the rootfs's content at the target into the
//     share's directory when that is empty (copyUp);
//   - creates the target inside the rootfs when missing (as Docker does);
//   - bind-mounts r.Subdir of the staged mount (resolved inside it) at
//     the target;
//   - remounts that bind read-only when r.Options has "ro".
func (s *Server) mountShare(r *agentpb.MountRequest) error {
	rel, err := inRootfs(r.Target)
	if err != nil {
		return fmt.Errorf("mount share %s on %s: %w", r.Source, r.Target, err)
	}
	if rel == "." {
		return errdefs.InvalidArgument(fmt.Errorf("mount share %s: the target cannot be the container's root", r.Source))
	}
	sub := r.Subdir
	if sub == "" {
		sub = "."
	}
	if !filepath.IsLocal(sub) {
		return errdefs.InvalidArgument(fmt.Errorf("mount share %s: subdir %q leaves the share", r.Source, r.Subdir))
	}
	flags, data := ParseMountOptions(r.Options...)
	staged, err := s.stageShare(r.Source, r.Fstype, data, r.Port, r.SerialPort, r.SerialSync)
	if err != nil {
		return err
	}
	src, err := openInRoot(staged, sub)
	if err != nil {
		return fmt.Errorf("mount share %s: open %s in it: %w", r.Source, sub, err)
	}
	defer unix.Close(src)
	if r.CopyUp {
		if err := s.copyUpShare(r, rel, src); err != nil {
			return err
		}
	}
	if err := mkdirInRoot(s.cfg.Rootfs, rel); err != nil {
		return fmt.Errorf("mount share %s on %s: create target: %w", r.Source, r.Target, err)
	}
	dst, err := openInRoot(s.cfg.Rootfs, rel)
	if err != nil {
		return fmt.Errorf("mount share %s on %s: %w", r.Source, r.Target, err)
	}
	err = unix.Mount(fdPath(src), fdPath(dst), "", unix.MS_BIND, "")
	unix.Close(dst)
	if err != nil {
		return fmt.Errorf("mount share %s on %s: bind: %w", r.Source, r.Target, err)
	}
	if flags&unix.MS_RDONLY == 0 {
		return nil
	}
	// Reopen the target: it now resolves to the bind's root, which the
	// remount makes read-only.
	top, err := openInRoot(s.cfg.Rootfs, rel)
	if err != nil {
		return fmt.Errorf("mount share %s on %s: %w", r.Source, r.Target, err)
	}
	defer unix.Close(top)
	if err := unix.Mount("", fdPath(top), "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount share %s on %s: make read-only: %w", r.Source, r.Target, err)
	}
	return nil
}

// copyUpShare copies the rootfs's directory at rel (when there is one)
// into the share's directory share (an open fd) when that is empty.
func (s *Server) copyUpShare(r *agentpb.MountRequest, rel string, share int) error {
	fd, err := openInRoot(s.cfg.Rootfs, rel)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // nothing in the image there
	}
	if err != nil {
		return fmt.Errorf("mount share %s on %s: copy up: %w", r.Source, r.Target, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("mount share %s on %s: copy up: %w", r.Source, r.Target, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	skipped, err := copyUp(fdPath(fd), fdPath(share))
	if err != nil {
		return fmt.Errorf("mount share %s on %s: %w", r.Source, r.Target, err)
	}
	if skipped > 0 {
		s.logger.Printf("mount share %s on %s: copy up left out %d device nodes, fifos or sockets", r.Source, r.Target, skipped)
	}
	return nil
}

// stageShare mounts source (a device tag) at ShareStaging/SOURCE the
// first time a share names it and returns that directory.
//
// With a port (a run-time share), the filesystem is 9P from the host's
// server on that agent port: see connectShare. With a serial port (a
// run-time share on one of the VM's spare ports), it is 9P from the
// host's server on that virtio-serial port: see openSharePort.
func (s *Server) stageShare(source, fstype, data string, port uint32, serialPort string, serialSync []byte) (string, error) {
	if source == "" || strings.ContainsRune(source, '/') || !filepath.IsLocal(source) {
		return "", errdefs.InvalidArgument(fmt.Errorf("mount share: source %q is not a share tag", source))
	}
	s.stageMu.Lock()
	defer s.stageMu.Unlock()
	if dir, ok := s.staged[source]; ok {
		return dir, nil
	}
	base := s.cfg.ShareStaging
	if base == "" {
		base = "/run/berth/shares"
	}
	dir := filepath.Join(base, source)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("mount share %s: %w", source, err)
	}
	s.waitLateModules(fstype)
	var conn io.Closer
	if port != 0 && serialPort != "" {
		return "", errdefs.InvalidArgument(fmt.Errorf("mount share %s: both an agent port and a serial port", source))
	}
	if port != 0 || serialPort != "" {
		var (
			fd  int
			c   io.Closer
			err error
		)
		if port != 0 {
			fd, c, err = s.connectShare(source, fstype, port)
		} else {
			fd, c, err = s.openSharePort(source, fstype, serialPort, serialSync)
		}
		if err != nil {
			return "", err
		}
		data = strings.TrimPrefix(data+fmt.Sprintf(",trans=fd,rfdno=%d,wfdno=%d", fd, fd), ",")
		err = unix.Mount(source, dir, fstype, unix.MS_NODEV|unix.MS_NOSUID, data)
		// The kernel holds its own reference to the socket.
		unix.Close(fd)
		if err != nil {
			c.Close()
			return "", fmt.Errorf("mount share %s (%s, %s) at %s: %w", source, fstype, data, dir, err)
		}
		conn = c
	} else if err := unix.Mount(source, dir, fstype, unix.MS_NODEV, data); err != nil {
		return "", fmt.Errorf("mount share %s (%s, %s) at %s: %w", source, fstype, data, dir, err)
	}
	s.staged[source] = dir
	if conn != nil {
		if s.shareConns == nil {
			s.shareConns = map[string]io.Closer{}
		}
		s.shareConns[source] = conn
	}
	return dir, nil
}

// shareAcceptTimeout bounds the wait for the host to connect to a
// run-time share's port.
const shareAcceptTimeout = 30 * time.Second

// connectShare accepts the host's connection on port and returns one
// end of a socket pair for the kernel's 9P client (trans=fd), the other
// end copied to and from the connection: the agent transport's
// connections are not all kernel sockets (yamux streams over a serial
// port). Closing the returned Closer ends the copy and the connection.
func (s *Server) connectShare(source, fstype string, port uint32) (int, io.Closer, error) {
	if fstype != "9p" {
		return -1, nil, errdefs.InvalidArgument(fmt.Errorf("mount share %s: a share over an agent port is 9p, not %q", source, fstype))
	}
	l, err := s.cfg.Listener.ListenPort(port)
	if err != nil {
		return -1, nil, fmt.Errorf("mount share %s: %w", source, err)
	}
	conn, err := acceptWithin(l, shareAcceptTimeout)
	if err != nil {
		return -1, nil, fmt.Errorf("mount share %s: accept on agent port %d: %w", source, port, err)
	}
	return s.relayShare(source, conn)
}

// openSharePort opens the spare virtio-serial port called name and
// returns one end of a socket pair for the kernel's 9P client
// (trans=fd), the other end copied to and from the port (portRelay).
// The kernel cannot be handed the port itself: its fd transport reads
// and writes with kernel_read/kernel_write, which since Linux 5.10 need
// read_iter/write_iter, and the virtio console driver has only read and
// write ("kernel write not supported for file /vport1p2"). Still, each
// 9P message then crosses one relay and the port, not yamux as well.
//
// The port is opened blocking, outside Go's poller: each relay goroutine
// sits in poll(2) and read(2) on its own thread, and a write returns once
// QEMU took the data. Through Go's poller (O_NONBLOCK, epoll) the same
// relay ran 500 small files in 140 s instead of ~70 and left a git status
// hanging for over 10 minutes (docs/BENCHMARKS.md).
//
// A port serves one share at a time and is reused after share rm: with
// a token (MountRequest.serial_sync) the relay first writes it to the
// port and drops what the port gives until the host echoes it (portsync), so
// bytes an earlier share left in the port never reach this mount. A
// port still held by an earlier mount is refused with EBUSY.
func (s *Server) openSharePort(source, fstype, name string, token []byte) (int, io.Closer, error) {
	if fstype != "9p" {
		return -1, nil, errdefs.InvalidArgument(fmt.Errorf("mount share %s: a share over a serial port is 9p, not %q", source, fstype))
	}
	if !strings.HasPrefix(name, "berth.share.") {
		return -1, nil, errdefs.InvalidArgument(fmt.Errorf("mount share %s: %q is not a share port (berth.share.N)", source, name))
	}
	p, err := transport.FindVirtioPort(name)
	if err != nil {
		return -1, nil, fmt.Errorf("mount share %s: %w", source, err)
	}
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("mount share %s: open %s: %w", source, name, err)
	}
	if len(token) > 0 {
		if err := writeFull(fd, token); err != nil {
			unix.Close(fd)
			return -1, nil, fmt.Errorf("mount share %s: start the stream on %s: %w", source, name, err)
		}
	}
	r, kernel, err := newPortRelay(fd)
	if err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("mount share %s: %w", source, err)
	}
	s.goSafe("share "+source+" from host", func() { r.fromHost(s, source, token) })
	s.goSafe("share "+source+" to host", func() { r.toHost() })
	return kernel, r, nil
}

// shareSyncTimeout bounds the wait for the host's echo of a share's
// sync token on a spare port.
const shareSyncTimeout = 30 * time.Second

// portRelay copies between a spare port and its end of the socket pair
// whose other end the kernel's 9P client holds, until Close, the host
// closing the port, or the kernel closing its end. Close waits for both
// directions to end and then closes the port, so that the next share can
// open it.
type portRelay struct {
	port, sock   int // the port and the relay's end of the socket pair
	stopR, stopW int // a pipe: a byte on it ends fromHost's poll
	stopOnce     sync.Once
	left         atomic.Int32  // directions still running
	finished     chan struct{} // closed once both have ended and the fds are closed
}

// newPortRelay makes the socket pair and the stop pipe for port and
// returns the relay and the kernel's end of the pair.
func newPortRelay(port int) (*portRelay, int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, -1, fmt.Errorf("socketpair: %w", err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, -1, fmt.Errorf("pipe: %w", err)
	}
	r := &portRelay{port: port, sock: fds[1], stopR: p[0], stopW: p[1], finished: make(chan struct{})}
	r.left.Store(2)
	return r, fds[0], nil
}

// stop ends both directions without waiting: fromHost's poll sees the
// pipe, and the shut-down socket ends toHost's read and fails
// fromHost's write.
func (r *portRelay) stop() {
	r.stopOnce.Do(func() {
		unix.Write(r.stopW, []byte{0})
		unix.Shutdown(r.sock, unix.SHUT_RDWR)
	})
}

// done is called by each direction as it ends; the last one closes the
// descriptors.
func (r *portRelay) done() {
	r.stop()
	if r.left.Add(-1) == 0 {
		for _, fd := range []int{r.port, r.sock, r.stopR, r.stopW} {
			unix.Close(fd)
		}
		close(r.finished)
	}
}

// Close ends the relay and returns once the port is closed.
func (r *portRelay) Close() error {
	r.stop()
	<-r.finished
	return nil
}

// fromHost copies the port to the kernel's socket, after the host's echo
// of token when there is one.
func (r *portRelay) fromHost(s *Server, source string, token []byte) {
	defer r.done()
	if len(token) > 0 {
		pr := &pollReader{r: r, deadline: time.Now().Add(shareSyncTimeout)}
		rest, err := portsync.Skip(pr, token)
		if err != nil {
			s.logger.Printf("share %s: %v", source, err)
			return
		}
		if writeFull(r.sock, rest) != nil {
			return
		}
	}
	buf := make([]byte, 64<<10)
	pr := &pollReader{r: r}
	for {
		n, err := pr.Read(buf)
		if n > 0 && writeFull(r.sock, buf[:n]) != nil {
			return
		}
		if err != nil {
			return
		}
	}
}

// toHost copies the kernel's socket to the port.
func (r *portRelay) toHost() {
	defer r.done()
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(r.sock, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n <= 0 || err != nil || writeFull(r.port, buf[:n]) != nil {
			return
		}
	}
}

// pollReader reads the relay's port, waiting in poll(2) so that stop
// (or the deadline, when set) ends the wait: a read(2) blocked on a
// virtio port returns only when data comes or the host closes it.
type pollReader struct {
	r        *portRelay
	deadline time.Time
}

func (p *pollReader) Read(b []byte) (int, error) {
	for {
		timeout := -1
		if !p.deadline.IsZero() {
			d := time.Until(p.deadline)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			timeout = int(d/time.Millisecond) + 1
		}
		fds := []unix.PollFd{{Fd: int32(p.r.port), Events: unix.POLLIN}, {Fd: int32(p.r.stopR), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, timeout); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return 0, fmt.Errorf("poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return 0, io.EOF
		}
		if fds[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(p.r.port, b)
		switch {
		case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN):
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF // the host closed the port
		}
		return n, nil
	}
}

// writeFull writes all of b to fd.
func writeFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// relayShare returns one end of a socket pair for the kernel's 9P
// client, the other end copied to and from conn until either side ends.
// Closing the returned Closer ends the copy and closes conn.
func (s *Server) relayShare(source string, conn io.ReadWriteCloser) (int, io.Closer, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		conn.Close()
		return -1, nil, fmt.Errorf("mount share %s: socketpair: %w", source, err)
	}
	ours := os.NewFile(uintptr(fds[1]), "share "+source)
	closeBoth := func() { ours.Close(); conn.Close() }
	s.goSafe("share "+source+" from host", func() { io.Copy(ours, conn); closeBoth() })
	s.goSafe("share "+source+" to host", func() { io.Copy(conn, ours); closeBoth() })
	return fds[0], closerFunc(closeBoth), nil
}

type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }

// unstageShare unmounts a run-time share's staged mount (lazily: the
// container's bind is gone already) and ends its connection.
func (s *Server) unstageShare(source string) error {
	s.stageMu.Lock()
	defer s.stageMu.Unlock()
	dir, ok := s.staged[source]
	if !ok {
		return nil
	}
	err := unix.Unmount(dir, unix.MNT_DETACH)
	if c := s.shareConns[source]; c != nil {
		c.Close()
		delete(s.shareConns, source)
	}
	delete(s.staged, source)
	if err != nil {
		return fmt.Errorf("unmount share %s at %s: %w", source, dir, err)
	}
	os.Remove(dir)
	return nil
}

// acceptWithin accepts one connection on l, waiting at most timeout for
// the host to connect, and closes l either way.
func acceptWithin(l net.Listener, timeout time.Duration) (net.Conn, error) {
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		ch <- accepted{c, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-ch:
		l.Close()
		return a.c, a.err
	case <-t.C:
		l.Close()
		if a := <-ch; a.err == nil {
			a.c.Close()
		}
		return nil, fmt.Errorf("the host did not connect within %v", timeout)
	}
}
