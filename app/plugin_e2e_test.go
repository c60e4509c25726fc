package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"
)

// pluginHome is a home with the shell script berth-<name> as a plugin.
func pluginHome(t *testing.T, name, script string) string {
	t.Helper()
	h := shortHome(t)
	dir := filepath.Join(h, "plugins")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "berth-"+name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".json", []byte(`{"description":"test plugin"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPluginStdioAndExitCode(t *testing.T) {
	h := pluginHome(t, "cat", `cat; echo "to stderr $1" >&2; exit "$2"`)
	cmd := exec.Command(berthBin, "cat", "x", "17")
	cmd.Env = append(os.Environ(), "BERTH_HOME="+h)
	cmd.Stdin = strings.NewReader("line one\nline two\n")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 17 {
		t.Errorf("exit: %v, want status 17", err)
	}
	if o.String() != "line one\nline two\n" || e.String() != "to stderr x\n" {
		t.Errorf("stdout %q stderr %q", o.String(), e.String())
	}
	if r := berth(t, h, "cat", "", "0"); r.code != 0 {
		t.Errorf("exit %d, want 0", r.code)
	}
}

func TestPluginSignalsForwarded(t *testing.T) {
	h := pluginHome(t, "trap", `for s in INT TERM HUP WINCH; do trap "echo got-$s; [ $s = WINCH ] || exit 40" $s; done
echo ready
while :; do sleep 0.05; done`)
	for _, c := range []struct {
		sig  syscall.Signal
		name string
	}{{syscall.SIGINT, "INT"}, {syscall.SIGTERM, "TERM"}, {syscall.SIGHUP, "HUP"}} {
		cmd := exec.Command(berthBin, "trap")
		cmd.Env = append(os.Environ(), "BERTH_HOME="+h)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		rd := bufio.NewReader(out)
		if line, _ := rd.ReadString('\n'); line != "ready\n" {
			t.Fatalf("first line %q", line)
		}
		// SIGWINCH is forwarded and the plugin keeps running.
		cmd.Process.Signal(syscall.SIGWINCH)
		if line, _ := rd.ReadString('\n'); line != "got-WINCH\n" {
			t.Fatalf("after SIGWINCH: %q", line)
		}
		time.Sleep(50 * time.Millisecond)
		cmd.Process.Signal(c.sig)
		line, _ := rd.ReadString('\n')
		err = cmd.Wait()
		if line != "got-"+c.name+"\n" {
			t.Errorf("%s: plugin printed %q, want got-%s", c.name, line, c.name)
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 40 {
			t.Errorf("%s: berth exited %v, want the plugin's status 40", c.name, err)
		}
	}
}

func TestPluginKilledBySignalExitCode(t *testing.T) {
	h := pluginHome(t, "die", `kill -KILL $$`)
	if r := berth(t, h, "die"); r.code != 128+9 {
		t.Errorf("exit %d, want 137 for a plugin killed by SIGKILL", r.code)
	}
}

// berthTopDir is a directory holding berth-top, built once (next to
// berthBin, which TestMain removes).
var berthTopDir = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(filepath.Dir(berthBin), "plugins")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "berth-top"), "./plugins/berth-top").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build berth-top: %v\n%s", err, out)
	}
	return dir, nil
})

// withTop is berth's environment with berth-top on BERTH_PLUGIN_PATH.
func withTop(t *testing.T, home string, args ...string) result {
	t.Helper()
	dir, err := berthTopDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(os.Environ(), "BERTH_HOME="+home, "BERTH_PLUGIN_PATH="+dir)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{o.String(), e.String(), code}
}

func TestBerthTopWithoutDaemon(t *testing.T) {
	home := shortHome(t)
	r := withTop(t, home, "plugin", "ls")
	if r.code != 0 || !strings.Contains(r.out, "Live table of running containers") || !strings.Contains(r.out, "BERTH_PLUGIN_PATH") {
		t.Errorf("plugin ls: exit %d\n%s%s", r.code, r.out, r.err)
	}
	r = withTop(t, home, "top", "--once")
	if r.code != 1 || !strings.Contains(r.err, "berth top:") || !strings.Contains(r.err, "berth daemon") {
		t.Errorf("top without a daemon: exit %d, stderr %q", r.code, r.err)
	}
}

// TestBerthTopAndContainerService boots one VM: berth top --once shows
// the running container with its CPU and memory, and a container
// lifecycle service plugin runs beside it with BERTH_CONTAINER_ID and is
// stopped when the container stops.
func TestBerthTopAndContainerService(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "top", testenv.BusyboxImage(t, nil))
	home := shortHome(t)
	marks := filepath.Join(t.TempDir(), "marks")
	pdir := filepath.Join(home, "plugins")
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o700)
	script := "#!/bin/sh\necho \"start $BERTH_CONTAINER_ID\" >> " + marks +
		"\ntrap 'echo \"stop $BERTH_CONTAINER_ID\" >> " + marks + "; exit 0' TERM\nwhile :; do sleep 0.1; done\n"
	if err := os.WriteFile(filepath.Join(pdir, "berth-sidecar"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "berth-sidecar.json"), []byte(`{"description":"x","kind":"service","lifecycle":"container"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, home)
	r := mustOK(t, "run -d", berth(t, home, "run", "-d", "--name", "busy", ref, "sh", "-c", "while :; do :; done"))
	id := strings.TrimSpace(r.out)
	r = mustOK(t, "top --once", withTop(t, home, "top", "--once"))
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID") || !strings.Contains(lines[0], "CPU %") || !strings.Contains(lines[0], "MEM USAGE / LIMIT") {
		t.Fatalf("top --once:\n%s", r.out)
	}
	f := strings.Fields(lines[1])
	if f[0] != id[:12] || f[1] != "busy" || !strings.HasSuffix(f[2], "%") || f[2] == "0.0%" {
		t.Errorf("top row %q: want busy's short ID, name and a CPU %% above 0 for a busy loop", lines[1])
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(readFile(marks), "start "+id) {
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar never started for %s; marks %q", id, readFile(marks))
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustOK(t, "stop", berth(t, home, "stop", "-t", "1", "busy"))
	for !strings.Contains(readFile(marks), "stop "+id) {
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar was not stopped with %s; marks %q", id, readFile(marks))
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustOK(t, "rm", berth(t, home, "rm", "busy"))
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
