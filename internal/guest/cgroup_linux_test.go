package guest

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/internal/testenv"
)

// cgroup2Mount is where this machine mounts cgroup2 (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid host); the test is unavailable
// without one.
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if f := strings.Fields(post); len(f) > 0 && f[0] == "cgroup2" {
			if pf := strings.Fields(pre); len(pf) > 4 {
				return pf[4]
			}
		}
	}
	testenv.Unavailable(t, "no cgroup2 mount on this machine")
	return ""
}

// TestContainerCgroups: every container gets a cgroup of its own under
// CgroupParent, the root of its cgroup namespace, and cgroup2 at
// /sys/fs/cgroup read-only; a privileged one may write it (make a child
// cgroup and move into it, as runc does); the cgroups, children
// included, go when the container's init is reaped.
func TestContainerCgroups(t *testing.T) {
	requireRoot(t)
	parent := filepath.Join(cgroup2Mount(t), "berth-guest-test-"+strconv.Itoa(os.Getpid()))
	t.Cleanup(func() { removeCgroup(parent) })
	e := newEnv(t, func(c *Config) { c.CgroupParent = parent })

	startMain(t, e, "sleep", "1000")
	script := "grep '^0::' /proc/self/cgroup; grep ' /sys/fs/cgroup ' /proc/self/mountinfo | grep -o ' ro,' ; mkdir /sys/fs/cgroup/x && echo mkdir-worked"
	out, errOut, st := e.run(t, &agentpb.CreateProcessRequest{Id: "check", ContainerId: "main", Args: []string{"sh", "-c", script}}, "")
	if out != "0::/\n ro,\n" || st.Code == 0 || !strings.Contains(errOut, "Read-only") {
		t.Errorf("in a container: %q, exit %d, stderr %q; want 0::/, a read-only cgroup2, mkdir refused", out, st.Code, errOut)
	}
	cgroups := childCgroups(t, parent)
	if len(cgroups) != 1 || !strings.HasSuffix(cgroups[0], "-main") {
		t.Fatalf("the containers' cgroups under %s: %q; want one N-main", parent, cgroups)
	}
	procs, err := os.ReadFile(filepath.Join(parent, cgroups[0], "cgroup.procs"))
	if err != nil || len(strings.Fields(string(procs))) < 2 {
		t.Errorf("%s/cgroup.procs = %q, %v; want the init and sleep", cgroups[0], procs, err)
	}

	script = "mkdir /sys/fs/cgroup/step && echo $$ > /sys/fs/cgroup/step/cgroup.procs && grep '^0::' /proc/self/cgroup && grep ' /sys ' /proc/self/mountinfo | grep -c ' rw,'"
	out, errOut, st = e.run(t, &agentpb.CreateProcessRequest{Id: "priv", Privileged: true, Args: []string{"sh", "-c", script}}, "")
	if out != "0::/step\n1\n" || st.Code != 0 {
		t.Errorf("in a privileged container: %q, exit %d, stderr %q; want a writable cgroup2 and sysfs", out, st.Code, errOut)
	}
	waitFor(t, "the privileged container's cgroup to go", func() bool {
		for _, c := range childCgroups(t, parent) {
			if strings.HasSuffix(c, "-priv") {
				return false
			}
		}
		return true
	})
}

// childCgroups lists the cgroups directly under dir.
func childCgroups(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestCgroupName(t *testing.T) {
	for id, want := range map[string]string{"abc-1_2.x": "abc-1_2.x", "a/b c": "a_b_c", strings.Repeat("z", 70): strings.Repeat("z", 64)} {
		if got := cgroupName(id); got != want {
			t.Errorf("cgroupName(%q) = %q, want %q", id, got, want)
		}
	}
}
