package container

import (
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent/agentpb"
)

// TestTopResponse: the agent's process list in ps -ef's columns, as
// docker top shows them.
func TestTopResponse(t *testing.T) {
	now := time.Date(2026, 12, 3, 17, 0, 0, 0, time.Local)
	ps := []*agentpb.ProcessInfo{
		{Pid: 1, Ppid: 0, Uid: 0, User: "root", StartUnixNs: now.Add(-100 * time.Second).UnixNano(), CpuUsec: 10e6,
			Args: []string{"busybox", "httpd", "-f", "-p", "80"}, Comm: "busybox"},
		{Pid: 7, Ppid: 1, Uid: 1000, StartUnixNs: now.Add(-48 * time.Hour).UnixNano(), CpuUsec: 90061e6, Tty: "pts/0", Comm: "sh"},
		{Pid: 8, Ppid: 7, Uid: 33, User: "www-data", StartUnixNs: time.Date(2025, 5, 1, 0, 0, 0, 0, time.Local).UnixNano(), Args: []string{"sleep", "9"}},
	}
	got := topResponse(ps, now)
	if strings.Join(got.Titles, " ") != "UID PID PPID C STIME TTY TIME CMD" {
		t.Errorf("titles %q", got.Titles)
	}
	want := []string{
		"root 1 0 10 16:58 ? 00:00:10 busybox httpd -f -p 80",
		"1000 7 1 52 Dec01 pts/0 1-01:01:01 [sh]",
		"www-data 8 7 0 2025 ? 00:00:00 sleep 9",
	}
	if len(got.Processes) != len(want) {
		t.Fatalf("processes %q", got.Processes)
	}
	for i, w := range want {
		if g := strings.Join(got.Processes[i], " "); g != w {
			t.Errorf("process %d: %q, want %q", i, g, w)
		}
	}
	for _, args := range []string{"", "-ef", "-fe", "-e -f", "ef"} {
		if !defaultPsArgs(args) {
			t.Errorf("ps_args %q refused", args)
		}
	}
	for _, args := range []string{"aux", "-o pid", "-e"} {
		if defaultPsArgs(args) {
			t.Errorf("ps_args %q accepted", args)
		}
	}
}
