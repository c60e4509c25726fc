package network

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// portHolder is a process that has a host port bound.
type portHolder struct {
	PID  int
	Name string
}

// holderOf finds the process that has port bound for proto ("tcp": a
// listening socket; "udp": any), best effort, from Linux's /proc under
// procRoot: the socket's inode from /proc/net/{tcp,tcp6,udp,udp6}, then
// the process with a descriptor on it among /proc/*/fd (only the
// processes this user may look into). ok is false where that is not
// known (another user's process, no /proc as on macOS).
func holderOf(procRoot, proto string, port uint16) (h portHolder, ok bool) {
	inodes := map[string]bool{}
	for _, table := range []string{proto, proto + "6"} {
		for _, ino := range socketInodes(filepath.Join(procRoot, "net", table), proto, port) {
			inodes[ino] = true
		}
	}
	if len(inodes) == 0 {
		return portHolder{}, false
	}
	procs, err := os.ReadDir(procRoot)
	if err != nil {
		return portHolder{}, false
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(procRoot, p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				comm, _ := os.ReadFile(filepath.Join(procRoot, p.Name(), "comm"))
				return portHolder{PID: pid, Name: strings.TrimSpace(string(comm))}, true
			}
		}
	}
	return portHolder{}, false
}

// socketInodes are the inodes of the sockets in a /proc/net table whose
// local port is port (tcp: listening ones only).
func socketInodes(path, proto string, port uint16) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	want := fmt.Sprintf(":%04X", port)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue rx_queue tr tm->when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || !strings.HasSuffix(fields[1], want) {
			continue
		}
		if proto == "tcp" && fields[3] != "0A" { // TCP_LISTEN
			continue
		}
		if fields[9] != "0" {
			out = append(out, fields[9])
		}
	}
	return out
}

// describe is the holder of a port as an error names it.
func (h portHolder) describe() string {
	if h.PID == os.Getpid() {
		return "Berth itself (another container publishes it)"
	}
	return fmt.Sprintf("%s (pid %d)", h.Name, h.PID)
}
