//go:build linux

package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSweepKillsOrphans: a pid file whose engine is gone gets its process
// killed and is removed; one whose engine lives (this test) is kept.
func TestSweepKillsOrphans(t *testing.T) {
	root := t.TempDir()
	// A stand-in for an orphaned QEMU, and a finished process whose pid
	// plays the dead engine.
	orphan := exec.Command("sleep", "60")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	reaped := make(chan struct{})
	go func() { orphan.Wait(); close(reaped) }()
	defer orphan.Process.Kill()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()

	self, _ := procStart(os.Getpid())
	oStart, _ := procStart(orphan.Process.Pid)
	lStart, _ := procStart(live.Process.Pid)
	for name, p := range map[string]pidFile{
		"orphan": {ID: "orphan", PID: orphan.Process.Pid, Start: oStart, EnginePID: dead.Process.Pid, EngineStart: 1},
		"live":   {ID: "live", PID: live.Process.Pid, Start: lStart, EnginePID: os.Getpid(), EngineStart: self},
		// A recycled pid: the recorded start time does not match, so the
		// process running under that pid now is not touched.
		"recycled": {ID: "recycled", PID: live.Process.Pid, Start: lStart + 1, EnginePID: dead.Process.Pid, EngineStart: 1},
	} {
		os.MkdirAll(filepath.Join(root, name), 0o755)
		if err := writePidFile(filepath.Join(root, name, PidFileName), p); err != nil {
			t.Fatal(err)
		}
	}
	stale, err := Sweep(context.Background(), filepath.Join(root, "*", PidFileName))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Stale{}
	for _, s := range stale {
		got[s.ID] = s
	}
	if s := got["orphan"]; !s.Killed || s.PID != orphan.Process.Pid {
		t.Errorf("orphan: %+v", s)
	}
	if s, ok := got["recycled"]; !ok || s.Killed {
		t.Errorf("recycled: %+v (want swept without a kill)", s)
	}
	if _, ok := got["live"]; ok {
		t.Error("swept a VM whose engine is alive")
	}
	select {
	case <-reaped:
	case <-time.After(5 * time.Second):
		t.Error("orphan still running")
	}
	if err := syscall.Kill(live.Process.Pid, 0); err != nil {
		t.Errorf("the live VM's process is gone: %v", err)
	}
	for name, want := range map[string]bool{"orphan": false, "recycled": false, "live": true} {
		_, err := os.Stat(filepath.Join(root, name, PidFileName))
		if (err == nil) != want {
			t.Errorf("%s pid file present = %v, want %v", name, err == nil, want)
		}
	}
}
