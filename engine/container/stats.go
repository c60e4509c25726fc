package container

import (
	"context"
	"fmt"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// Stats reports the container's VM's CPU, memory and process counts in
// Docker's shape (one sample; `docker stats --no-stream`).
func (m *Manager) Stats(ctx context.Context, ref string) (mobycontainer.StatsResponse, error) {
	c, err := m.Get(ref)
	if err != nil {
		return mobycontainer.StatsResponse{}, err
	}
	c.mu.Lock()
	r := c.run
	id, name := c.spec.ID, c.spec.Name
	c.mu.Unlock()
	out := mobycontainer.StatsResponse{ID: id, Name: "/" + name, OSType: "linux", Read: time.Now().UTC()}
	if r == nil {
		return out, nil
	}
	st, err := r.agent.Stats(ctx)
	if err != nil {
		return out, errdefs.Unavailable(fmt.Errorf("stats of container %s: %w", id[:12], err))
	}
	total := (st.CpuUserUsec + st.CpuSystemUsec) * 1000
	out.CPUStats = mobycontainer.CPUStats{
		CPUUsage:    mobycontainer.CPUUsage{TotalUsage: total, UsageInUsermode: st.CpuUserUsec * 1000, UsageInKernelmode: st.CpuSystemUsec * 1000},
		OnlineCPUs:  st.Cpus,
		SystemUsage: uint64(time.Now().UnixNano()) * uint64(max(st.Cpus, 1)),
	}
	out.MemoryStats = mobycontainer.MemoryStats{Usage: st.MemoryUsedBytes, Limit: st.MemoryTotalBytes}
	out.PidsStats = mobycontainer.PidsStats{Current: uint64(st.Pids)}
	return out, nil
}
