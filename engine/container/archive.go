package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// docker cp (GET, HEAD, PUT /containers/{id}/archive): the container's
// files live in its VM, so the transfers go through its agent and need
// the container running. The guest resolves paths as Docker does and
// refuses archive entries that would land outside the target directory.

// ArchiveOptions tune ExtractArchive (Docker's PUT query parameters).
type ArchiveOptions = agent.ArchiveOptions

// copyAgent returns the agent of the running container ref.
func (m *Manager) copyAgent(ref string) (*Container, *agent.Client, error) {
	c, err := m.Get(ref)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.run == nil {
		return nil, nil, errdefs.Conflict(fmt.Errorf("container %s is not running: Berth copies files through the container's VM, so start it first (docker start %s)", c.spec.Name, c.spec.Name))
	}
	return c, c.run.agent, nil
}

// copyError gives a guest's answer Docker's wording.
func copyError(c *Container, path string, err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		return errdefs.NotFound(fmt.Errorf("Could not find the file %s in container %s", path, c.spec.Name))
	}
	return err
}

func pathStat(st *agentpb.PathStat) mobycontainer.PathStat {
	return mobycontainer.PathStat{
		Name:       st.Name,
		Size:       st.Size,
		Mode:       fs.FileMode(st.Mode),
		Mtime:      time.Unix(0, st.MtimeNs).UTC(),
		LinkTarget: st.LinkTarget,
	}
}

// StatPath describes path in the running container ref (HEAD archive).
func (m *Manager) StatPath(ctx context.Context, ref, path string) (mobycontainer.PathStat, error) {
	c, a, err := m.copyAgent(ref)
	if err != nil {
		return mobycontainer.PathStat{}, err
	}
	st, err := a.StatPath(ctx, path)
	if err != nil {
		return mobycontainer.PathStat{}, copyError(c, path, err)
	}
	return pathStat(st), nil
}

// ArchivePath writes a tar of path in the running container ref to the
// writer start returns, once the path is found (GET archive). An error
// after start was called means the tar is incomplete.
func (m *Manager) ArchivePath(ctx context.Context, ref, path string, start func(mobycontainer.PathStat) (io.Writer, error)) error {
	c, a, err := m.copyAgent(ref)
	if err != nil {
		return err
	}
	err = a.ReadArchive(ctx, path, func(st *agentpb.PathStat) (io.Writer, error) { return start(pathStat(st)) })
	if err != nil {
		return copyError(c, path, err)
	}
	m.publish(c, "archive-path", map[string]string{"path": path})
	return nil
}

// ExtractArchive extracts the tar r into path, a directory in the running
// container ref (PUT archive). On a read-only rootfs (--read-only) only
// volumes and binds take files. An archive entry that would land outside path is
// errdefs.ErrInvalidArgument naming it.
func (m *Manager) ExtractArchive(ctx context.Context, ref, path string, r io.Reader, opts ArchiveOptions) error {
	c, a, err := m.copyAgent(ref)
	if err != nil {
		return err
	}
	if err := a.WriteArchive(ctx, path, r, opts); err != nil {
		return copyError(c, path, err)
	}
	m.publish(c, "extract-to-dir", map[string]string{"path": path})
	return nil
}
