package guest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent/agentpb"
)

// TestListProcesses: docker top's list is the container's processes only
// (not guestinit's, not the container init), with the PIDs the container
// sees, parents inside it (0 outside), users named from the container's
// /etc/passwd, start times and command lines.
func TestListProcesses(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	before := time.Now().Add(-2 * time.Second) // btime has whole seconds
	startMain(t, e, "sh", "-c", "sleep 1001 & wait")
	bg := &agentpb.CreateProcessRequest{Id: "bg", ContainerId: "main", Args: []string{"sleep", "1002"}, User: "tester"}
	if err := e.client.CreateProcess(ctx, bg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.StartProcess(ctx, "bg"); err != nil {
		t.Fatal(err)
	}
	var ps []*agentpb.ProcessInfo
	waitFor(t, "three processes in the container", func() bool {
		var err error
		if ps, err = e.client.ListProcesses(ctx); err != nil {
			t.Fatal(err)
		}
		// (the shell's child runs sleep once it has executed it)
		return len(ps) == 3 && slices.ContainsFunc(ps, func(p *agentpb.ProcessInfo) bool { return strings.Join(p.Args, " ") == "sleep 1001" })
	})
	var got []string
	for _, p := range ps {
		pid := "1"
		if p.Pid != 1 {
			pid = "N" // the shell's fork and the exec's: some PID above 1
			if p.Pid < 2 || p.Pid > 1000 {
				t.Errorf("process %q has PID %d in the container", p.Args, p.Pid)
			}
		}
		got = append(got, fmt.Sprintf("%s %d %d %s %s", pid, p.Ppid, p.Uid, p.User, strings.Join(p.Args, " ")))
		if start := time.Unix(0, p.StartUnixNs); start.Before(before) || start.After(time.Now().Add(2*time.Second)) {
			t.Errorf("process %d started at %v, want between %v and now", p.Pid, start, before)
		}
		if p.Tty != "" {
			t.Errorf("process %d has terminal %q, want none", p.Pid, p.Tty)
		}
	}
	sort.Strings(got)
	// The main process is PID 1 (its parent, the init, is outside); the
	// exec'd sleep's parent is outside too.
	want := []string{"1 0 0 root sh -c sleep 1001 & wait", "N 0 1000 tester sleep 1002", "N 1 0 root sleep 1001"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ListProcesses:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
