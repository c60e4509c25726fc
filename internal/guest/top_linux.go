package guest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/berthvm/berth/internal/procstat"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/user"
)

// listProcesses answers ListProcesses (docker top) from /proc:
//
//   - reads every process's parent, and keeps the descendants of the
//     container inits this server started (the main process, exec'd
//     processes and health probes, and their children), not the inits
//     themselves: the container's processes, nothing of guestinit's;
//   - reads each one's PID as the container sees it (the last NSpid),
//     effective uid, start time, CPU time, terminal and command line;
//   - names the uids from the container's /etc/passwd (through the main
//     process's root).
//
// A process that exits while it is read is left out.
func (s *Server) listProcesses() (*agentpb.ListProcessesResponse, error) {
	s.mu.Lock()
	inits := make(map[int]bool, len(s.inits))
	for pid := range s.inits {
		inits[pid] = true
	}
	s.mu.Unlock()

	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	stats := map[int]procstat.Stat{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := procstat.Read(pid); err == nil {
			stats[pid] = st
		}
	}
	inContainer := func(pid int) bool {
		for seen := 0; seen < len(stats); seen++ {
			st, ok := stats[pid]
			if !ok || pid <= 1 {
				return false
			}
			if inits[st.PPID] {
				return true
			}
			pid = st.PPID
		}
		return false
	}
	boot, err := procBootTime()
	if err != nil {
		return nil, err
	}
	var pids []int
	for pid := range stats {
		if !inits[pid] && inContainer(pid) {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	resp := &agentpb.ListProcessesResponse{}
	nsPid := map[int]int32{}
	for _, pid := range pids {
		p, err := readProcessInfo(pid, stats[pid], boot)
		if err != nil {
			continue // exited meanwhile
		}
		nsPid[pid] = p.Pid
		resp.Processes = append(resp.Processes, p)
	}
	names := map[uint32]string{}
	if len(pids) > 0 {
		names = passwdNames(pids[0])
	}
	for _, p := range resp.Processes {
		p.User = names[p.Uid]
		// The parent as the container sees it: 0 for one outside it.
		p.Ppid = nsPid[int(p.Ppid)]
	}
	return resp, nil
}

// readProcessInfo completes st with /proc/PID/status and cmdline. Ppid
// is left as the guest's pid of the parent.
func readProcessInfo(pid int, st procstat.Stat, bootUnix int64) (*agentpb.ProcessInfo, error) {
	p := &agentpb.ProcessInfo{
		Pid:         int32(pid),
		Ppid:        int32(st.PPID),
		Comm:        st.Comm,
		CpuUsec:     st.CPUTicks * 1e6 / clockTicks,
		StartUnixNs: bootUnix*1e9 + int64(st.StartTicks)*1e9/clockTicks,
		Tty:         ttyName(st.TTY),
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fs := strings.Fields(v)
		switch {
		case k == "Uid" && len(fs) >= 2:
			uid, _ := strconv.ParseUint(fs[1], 10, 32) // effective, as ps -f
			p.Uid = uint32(uid)
		case k == "NSpid" && len(fs) > 0:
			n, _ := strconv.Atoi(fs[len(fs)-1])
			p.Pid = int32(n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	if cmd = bytes.TrimRight(cmd, "\x00"); len(cmd) > 0 {
		p.Args = strings.Split(string(cmd), "\x00")
	}
	return p, nil
}

// ttyName names a controlling terminal by its device number, as ps does
// for the terminals a container has: pts/N (major 136-143), ttySN (4,
// minor 64+), ttyN (4), console (5:1); "" for none.
func ttyName(nr int) string {
	if nr == 0 {
		return ""
	}
	major, minor := (nr>>8)&0xfff, (nr&0xff)|((nr>>12)&0xfff00)
	switch {
	case major >= 136 && major <= 143:
		return fmt.Sprintf("pts/%d", (major-136)*256+minor)
	case major == 4 && minor >= 64:
		return fmt.Sprintf("ttyS%d", minor-64)
	case major == 4:
		return fmt.Sprintf("tty%d", minor)
	case major == 5 && minor == 1:
		return "console"
	}
	return fmt.Sprintf("%d:%d", major, minor)
}

// procBootTime is the guest's boot time in Unix seconds (btime in
// /proc/stat), against which process start ticks count.
func procBootTime() (int64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("list processes: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("list processes: no btime in /proc/stat")
}

// passwdNames reads the user names of the container's /etc/passwd,
// through the root of the container's process pid; none when it has
// none.
func passwdNames(pid int) map[uint32]string {
	f, err := os.Open(filepath.Join(fmt.Sprintf("/proc/%d/root", pid), "etc", "passwd"))
	if err != nil {
		return map[uint32]string{}
	}
	defer f.Close()
	names, err := user.Names(f)
	if err != nil {
		return map[uint32]string{}
	}
	return names
}
