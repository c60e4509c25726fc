package container

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	mobycontainer "github.com/moby/moby/api/types/container"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
)

// topTitles are ps -ef's columns, what docker top shows by default.
var topTitles = []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}

// Top lists the processes of the running container ref (docker top) in
// Docker's shape with ps -ef's columns: the container's agent reads them
// from the guest's /proc. PIDs are those the container sees (its main
// process is 1; PPID 0 is a parent outside the container). psArgs may be
// "" or ps -ef's ("-ef"); Berth runs no ps, so other options are
// errdefs.ErrInvalidArgument saying so. A stopped container is
// errdefs.ErrConflict, as Docker answers.
func (m *Manager) Top(ctx context.Context, ref, psArgs string) (mobycontainer.TopResponse, error) {
	if !defaultPsArgs(psArgs) {
		return mobycontainer.TopResponse{}, errdefs.InvalidArgument(fmt.Errorf(
			"docker top options %q are not supported by Berth: its agent lists the processes itself, with ps -ef's columns; run docker top %s without options, or docker exec %s ps %s",
			psArgs, ref, ref, psArgs))
	}
	c, err := m.Get(ref)
	if err != nil {
		return mobycontainer.TopResponse{}, err
	}
	c.mu.Lock()
	r := c.run
	id := c.spec.ID
	running := c.state.Status == mobycontainer.StateRunning
	c.mu.Unlock()
	if r == nil || !running {
		return mobycontainer.TopResponse{}, errdefs.Conflict(fmt.Errorf("container %s is not running", id))
	}
	ps, err := r.agent.ListProcesses(ctx)
	if err != nil {
		return mobycontainer.TopResponse{}, errdefs.Unavailable(fmt.Errorf("top of container %s: %w", id[:12], err))
	}
	return topResponse(ps, time.Now()), nil
}

// defaultPsArgs reports whether psArgs asks for ps -ef's listing.
func defaultPsArgs(psArgs string) bool {
	flags := strings.ReplaceAll(strings.Join(strings.Fields(psArgs), ""), "-", "")
	return flags == "" || flags == "ef" || flags == "fe"
}

// topResponse formats ps as ps -ef does at now.
func topResponse(ps []*agentpb.ProcessInfo, now time.Time) mobycontainer.TopResponse {
	out := mobycontainer.TopResponse{Titles: topTitles, Processes: [][]string{}}
	for _, p := range ps {
		user := p.User
		if user == "" {
			user = strconv.FormatUint(uint64(p.Uid), 10)
		}
		tty := p.Tty
		if tty == "" {
			tty = "?"
		}
		cmd := strings.Join(p.Args, " ")
		if cmd == "" {
			cmd = "[" + p.Comm + "]"
		}
		start := time.Unix(0, p.StartUnixNs)
		out.Processes = append(out.Processes, []string{
			user, strconv.Itoa(int(p.Pid)), strconv.Itoa(int(p.Ppid)),
			strconv.Itoa(cpuPercent(p.CpuUsec, now.Sub(start))),
			stime(start, now), tty, cpuTime(p.CpuUsec), cmd,
		})
	}
	return out
}

// cpuPercent is ps's C: CPU time over time since the start, in percent.
func cpuPercent(cpuUsec uint64, elapsed time.Duration) int {
	if elapsed <= 0 {
		return 0
	}
	return int(float64(cpuUsec) * 1e3 * 100 / float64(elapsed.Nanoseconds()))
}

// stime is ps's STIME: the time of day for a process started in the
// last 24 hours, else month and day, else the year.
func stime(start, now time.Time) string {
	start = start.Local()
	switch {
	case now.Sub(start) < 24*time.Hour:
		return start.Format("15:04")
	case start.Year() == now.Year():
		return start.Format("Jan02")
	}
	return start.Format("2006")
}

// cpuTime is ps's TIME: [DD-]HH:MM:SS of CPU.
func cpuTime(usec uint64) string {
	s := usec / 1e6
	d, h, m := s/86400, s/3600%24, s/60%60
	if d > 0 {
		return fmt.Sprintf("%d-%02d:%02d:%02d", d, h, m, s%60)
	}
	return fmt.Sprintf("%02d:%02d:%02d", h, m, s%60)
}
