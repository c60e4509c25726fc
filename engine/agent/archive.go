package agent

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/berthvm/berth/engine/agent/agentpb"
)

// docker cp's transfers (docs/agent.md): OpenArchive makes the guest
// resolve the path and listen on a fresh port; the host dials it and
// reads the tar the guest writes, or writes the tar the guest extracts;
// WaitArchive then reports how the guest's side ended, which is the
// transfer's result (a refused archive entry, a full disk).

// StatPath describes path (absolute, in the container) as docker cp's
// HEAD does. A missing path is errdefs.ErrNotFound.
func (c *Client) StatPath(ctx context.Context, path string) (*agentpb.PathStat, error) {
	st, err := c.api.StatPath(ctx, &agentpb.StatPathRequest{Path: path})
	return st, fromStatus("stat "+path, err)
}

// ArchiveOptions tune WriteArchive.
type ArchiveOptions struct {
	// CopyUIDGID keeps the archive's owners (docker cp -a).
	CopyUIDGID bool
	// NoOverwriteDirNonDir refuses to replace a directory with a
	// non-directory or the reverse.
	NoOverwriteDirNonDir bool
}

// ReadArchive streams a tar of path (absolute, in the container) to the
// writer start returns once the guest has found the path: start sees the
// path's stat first (the HTTP handler sets its header from it). An error
// after start was called means the tar written is incomplete.
func (c *Client) ReadArchive(ctx context.Context, path string, start func(*agentpb.PathStat) (io.Writer, error)) error {
	port := c.NextPort()
	st, err := c.api.OpenArchive(ctx, &agentpb.ArchiveRequest{Path: path, Port: port})
	if err != nil {
		return fromStatus("archive "+path, err)
	}
	conn, err := c.dialer.DialPort(ctx, port)
	if err != nil {
		c.waitArchive(ctx, port)
		return fmt.Errorf("archive %s: %w", path, err)
	}
	w, err := start(st)
	if err != nil {
		conn.Close()
		c.waitArchive(ctx, port)
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	_, cerr := io.Copy(w, conn)
	stop()
	conn.Close()
	if werr := c.waitArchive(ctx, port); werr != nil {
		return werr
	}
	if cerr != nil {
		return fmt.Errorf("archive %s: %w", path, cerr)
	}
	return ctx.Err()
}

// WriteArchive extracts the tar stream r into path, a directory in the
// container. An entry that would land outside it is refused
// (errdefs.ErrInvalidArgument naming the entry); a path that is not a
// directory is errdefs.ErrInvalidArgument, a missing one
// errdefs.ErrNotFound.
func (c *Client) WriteArchive(ctx context.Context, path string, r io.Reader, opts ArchiveOptions) error {
	port := c.NextPort()
	_, err := c.api.OpenArchive(ctx, &agentpb.ArchiveRequest{
		Path: path, Port: port, Write: true,
		CopyUidGid: opts.CopyUIDGID, NoOverwriteDirNonDir: opts.NoOverwriteDirNonDir,
	})
	if err != nil {
		return fromStatus("extract into "+path, err)
	}
	conn, err := c.dialer.DialPort(ctx, port)
	if err != nil {
		c.waitArchive(ctx, port)
		return fmt.Errorf("extract into %s: %w", path, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	_, cerr := io.Copy(conn, r)
	stop()
	conn.Close()
	// The guest's verdict comes first: a refused entry closes the
	// connection, and the copy's broken pipe says less.
	if werr := c.waitArchive(ctx, port); werr != nil {
		return werr
	}
	if cerr != nil && !errors.Is(cerr, io.ErrClosedPipe) {
		return fmt.Errorf("extract into %s: %w", path, cerr)
	}
	return ctx.Err()
}

func (c *Client) waitArchive(ctx context.Context, port uint32) error {
	_, err := c.api.WaitArchive(ctx, &agentpb.WaitArchiveRequest{Port: port})
	return fromStatus("archive transfer", err)
}
