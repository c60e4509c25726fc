package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"strings"
	"time"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/tarcopy"
)

// docker cp in the guest: StatPath, OpenArchive and WaitArchive work on
// Config.Rootfs as guestinit sees it, the container's rootfs with the
// volumes and binds the agent mounted under it (the container's own
// /proc, /dev and /sys are not there). Paths resolve as Docker resolves
// them (tarcopy.ResolveInRoot) and every access goes through an os.Root,
// so neither a symlink in the container nor an entry of the archive
// reaches outside the rootfs, or outside the directory extracted into.

// archiveAcceptTimeout bounds the wait for the host to connect to an
// archive's port.
const archiveAcceptTimeout = 30 * time.Second

// archiveDrainLimit bounds what the guest reads after a written archive's
// end marker (tar padding) before it closes the connection.
const archiveDrainLimit = 1 << 20

// archiveJob is a transfer OpenArchive started: done closes when it
// ended, with err.
type archiveJob struct {
	done chan struct{}
	err  error
}

// resolveCopyPath resolves a docker cp path in root: the last element is
// followed when p ends in "/" or "/." (as Docker does). It returns the
// resolved path relative to root and the name the path's entries get in
// an archive (the last element of p as given, "." for "/.").
func resolveCopyPath(root *os.Root, p string) (rel, base string, err error) {
	if !path.IsAbs(p) {
		return "", "", errdefs.InvalidArgument(fmt.Errorf("path %q is not absolute", p))
	}
	followLast := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.")
	base = path.Base(p)
	if strings.HasSuffix(p, "/.") {
		base = "."
	}
	rel, err = tarcopy.ResolveInRoot(root, p, followLast)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", errdefs.NotFound(fmt.Errorf("no such file or directory: %s", p))
	}
	return rel, base, err
}

// statCopyPath is StatPath's answer for p.
func statCopyPath(root *os.Root, p string) (*agentpb.PathStat, string, error) {
	rel, base, err := resolveCopyPath(root, p)
	if err != nil {
		return nil, "", err
	}
	fi, err := root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", errdefs.NotFound(fmt.Errorf("no such file or directory: %s", p))
	}
	if err != nil {
		return nil, "", fmt.Errorf("stat %s: %w", p, err)
	}
	st := &agentpb.PathStat{Name: base, Size: fi.Size(), Mode: uint32(fi.Mode()), MtimeNs: fi.ModTime().UnixNano()}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if target, err := tarcopy.ResolveInRoot(root, "/"+rel, true); err == nil {
			st.LinkTarget = path.Join("/", target)
		}
	}
	return st, rel, nil
}

func (s *Server) openRootfs() (*os.Root, error) {
	root, err := os.OpenRoot(s.cfg.Rootfs)
	if err != nil {
		return nil, fmt.Errorf("open the container rootfs: %w", err)
	}
	return root, nil
}

func (v *service) StatPath(ctx context.Context, r *agentpb.StatPathRequest) (*agentpb.PathStat, error) {
	root, err := v.s.openRootfs()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	st, _, err := statCopyPath(root, r.Path)
	return st, err
}

func (v *service) OpenArchive(ctx context.Context, r *agentpb.ArchiveRequest) (*agentpb.PathStat, error) {
	s := v.s
	root, err := s.openRootfs()
	if err != nil {
		return nil, err
	}
	st, rel, err := statCopyPath(root, r.Path)
	if err != nil {
		root.Close()
		return nil, err
	}
	var target *os.Root
	if r.Write {
		if fs.FileMode(st.Mode)&fs.ModeSymlink != 0 {
			if st.LinkTarget == "" {
				root.Close()
				return nil, errdefs.InvalidArgument(fmt.Errorf("extraction point is not a directory: %s is a symlink that does not resolve", r.Path))
			}
			rel = strings.TrimPrefix(st.LinkTarget, "/")
			if rel == "" {
				rel = "."
			}
		}
		target, err = root.OpenRoot(rel)
		if err == nil {
			var fi fs.FileInfo
			if fi, err = target.Stat("."); err == nil && !fi.IsDir() {
				err = errdefs.InvalidArgument(fmt.Errorf("extraction point is not a directory: %s", r.Path))
			}
		}
		if err != nil {
			root.Close()
			if target != nil {
				target.Close()
			}
			if errors.Is(err, errdefs.ErrInvalidArgument) {
				return nil, err
			}
			return nil, errdefs.InvalidArgument(fmt.Errorf("extraction point is not a directory: %s (%w)", r.Path, err))
		}
	}
	l, err := s.cfg.Listener.ListenPort(r.Port)
	if err != nil {
		root.Close()
		if target != nil {
			target.Close()
		}
		return nil, fmt.Errorf("archive %s: listen on port %d: %w", r.Path, r.Port, err)
	}
	job := &archiveJob{done: make(chan struct{})}
	s.mu.Lock()
	if s.archives[r.Port] != nil {
		s.mu.Unlock()
		l.Close()
		root.Close()
		return nil, errdefs.Conflict(fmt.Errorf("archive port %d is in use", r.Port))
	}
	s.archives[r.Port] = job
	s.mu.Unlock()
	s.goSafe("archive "+r.Path, func() {
		defer close(job.done)
		defer root.Close()
		if target != nil {
			defer target.Close()
		}
		job.err = s.runArchive(l, r, root, rel, st.Name, target)
		if job.err != nil {
			s.logger.Printf("archive %s (write %v): %v", r.Path, r.Write, job.err)
		}
	})
	return st, nil
}

// runArchive accepts the host's connection on l and runs the transfer.
func (s *Server) runArchive(l net.Listener, r *agentpb.ArchiveRequest, root *os.Root, rel, base string, target *os.Root) error {
	conn, err := acceptWithin(l, archiveAcceptTimeout)
	if err != nil {
		return fmt.Errorf("archive %s: accept on port %d: %w", r.Path, r.Port, err)
	}
	defer conn.Close()
	ctx := context.Background()
	if !r.Write {
		return tarcopy.Archive(ctx, root, rel, base, conn)
	}
	opts := tarcopy.ExtractOptions{KeepOwner: r.CopyUidGid, NoOverwriteDirNonDir: r.NoOverwriteDirNonDir}
	if err := tarcopy.Extract(ctx, target, conn, opts); err != nil {
		var he *tarcopy.HostileError
		if errors.As(err, &he) {
			return errdefs.InvalidArgument(fmt.Errorf("extract into %s: %w", r.Path, err))
		}
		return fmt.Errorf("extract into %s: %w", r.Path, err)
	}
	// The tar's padding after its end marker, until the host closes.
	_, _ = io.CopyN(io.Discard, conn, archiveDrainLimit)
	return nil
}

func (v *service) WaitArchive(ctx context.Context, r *agentpb.WaitArchiveRequest) (*agentpb.Empty, error) {
	s := v.s
	s.mu.Lock()
	job := s.archives[r.Port]
	s.mu.Unlock()
	if job == nil {
		return nil, errdefs.NotFound(fmt.Errorf("no archive transfer on port %d", r.Port))
	}
	select {
	case <-job.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	delete(s.archives, r.Port)
	s.mu.Unlock()
	if job.err != nil {
		return nil, job.err
	}
	return empty, nil
}
