package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
