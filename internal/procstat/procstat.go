// Package procstat reads what Linux's /proc/PID/stat says of a process:
// the one parser for the host's VM pid files and the guest's process
// list.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat is the part of /proc/PID/stat Berth uses.
type Stat struct {
	// Comm is the command name (field 2, without its parentheses).
	Comm string
	// PPID is the parent's pid (field 4).
	PPID int
	// TTY is the controlling terminal's device number (field 7).
	TTY int
	// CPUTicks is user plus system time in clock ticks (fields 14, 15).
	CPUTicks uint64
	// StartTicks is when the process started, in clock ticks after boot
	// (field 22).
	StartTicks uint64
}

// Read parses /proc/PID/stat. The command name may hold spaces and
// parentheses, so fields are counted from its last ')'.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return parse(pid, b)
}

func parse(pid int, b []byte) (Stat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[end+1:])) // f[0] is field 3 (state)
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	st := Stat{Comm: string(b[open+1 : end])}
	st.PPID, _ = strconv.Atoi(f[1])
	st.TTY, _ = strconv.Atoi(f[4])
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	st.CPUTicks = utime + stime
	var err error
	if st.StartTicks, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("parse /proc/%d/stat: start time: %w", pid, err)
	}
	return st, nil
}
