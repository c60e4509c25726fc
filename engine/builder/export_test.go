package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"path"
	"strings"

	"github.com/berthvm/berth/engine/agent/agentpb"
)

// BuildLeftovers lists what builds left in the running builder's
// berth-builds directory on the cache disk, through the agent's archive
// RPC: each entry's name and whether it is a directory.
func BuildLeftovers(ctx context.Context, m *Manager) (map[string]bool, error) {
	m.mu.Lock()
	r := m.run
	m.mu.Unlock()
	if r == nil {
		return nil, errors.New("the builder is not running")
	}
	var b bytes.Buffer
	err := r.ac.ReadArchive(ctx, path.Join(cacheMount, buildsDir), func(*agentpb.PathStat) (io.Writer, error) { return &b, nil })
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	tr := tar.NewReader(&b)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		parts := strings.Split(strings.Trim(h.Name, "/"), "/")
		if len(parts) == 2 { // berth-builds/ID
			out[parts[1]] = h.Typeflag == tar.TypeDir
		}
	}
}
