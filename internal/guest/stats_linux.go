package guest

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/berthvm/berth/engine/agent/agentpb"
)

// clockTicks is USER_HZ, 100 on every Linux architecture we run.
const clockTicks = 100

// readStats reads the guest's cpu time, memory and process count from
// /proc: the VM is the container, so VM-wide numbers are the container's.
func readStats() (*agentpb.StatsResponse, error) {
	st := &agentpb.StatsResponse{Cpus: uint32(runtime.NumCPU())}
	if err := readCPU(st); err != nil {
		return nil, err
	}
	if err := readMeminfo(st); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			st.Pids++
		}
	}
	return st, nil
}

func readCPU(st *agentpb.StatsResponse) error {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || fs[0] != "cpu" {
			continue
		}
		user, _ := strconv.ParseUint(fs[1], 10, 64)
		nice, _ := strconv.ParseUint(fs[2], 10, 64)
		sys, _ := strconv.ParseUint(fs[3], 10, 64)
		st.CpuUserUsec = (user + nice) * 1e6 / clockTicks
		st.CpuSystemUsec = sys * 1e6 / clockTicks
		return nil
	}
	return fmt.Errorf("stats: no cpu line in /proc/stat")
}

func readMeminfo(st *agentpb.StatsResponse) error {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		kb, _ := strconv.ParseUint(fs[1], 10, 64)
		switch fs[0] {
		case "MemTotal:":
			st.MemoryTotalBytes = kb << 10
		case "MemAvailable:":
			st.MemoryAvailableBytes = kb << 10
		}
	}
	if st.MemoryTotalBytes >= st.MemoryAvailableBytes {
		st.MemoryUsedBytes = st.MemoryTotalBytes - st.MemoryAvailableBytes
	}
	return sc.Err()
}
