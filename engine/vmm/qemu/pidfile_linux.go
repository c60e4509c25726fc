//go:build linux

package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/berthvm/berth/internal/procstat"
)

// PidFileName is the name of the pid file a Machine keeps in its
// StateDir while QEMU runs.
const PidFileName = "qemu.pid"

// pidFile records which QEMU process runs a VM and which engine process
// started it. Processes are identified by pid and start time (clock ticks
// since boot, /proc/PID/stat field 22), so a recycled pid is not mistaken
// for the original.
type pidFile struct {
	ID          string `json:"id"`
	PID         int    `json:"pid"`
	Start       uint64 `json:"start"`
	EnginePID   int    `json:"engine_pid"`
	EngineStart uint64 `json:"engine_start"`
}

func writePidFile(path string, p pidFile) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// procStart returns the start time of process pid in clock ticks since
// boot, or an error when there is no such process.
func procStart(pid int) (uint64, error) {
	st, err := procstat.Read(pid)
	if err != nil {
		return 0, err
	}
	return st.StartTicks, nil
}

// alive reports whether pid still is the process that started at start.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	s, err := procStart(pid)
	return err == nil && s == start
}

// Stale is a QEMU process Sweep found without its engine.
type Stale struct {
	// PidFile is the pid file that named it.
	PidFile string
	// ID is the VM's ID.
	ID string
	// PID is the QEMU process; 0 when it was gone already.
	PID int
	// Killed says Sweep killed it.
	Killed bool
}

// Sweep looks at every pid file matching pattern (a filepath.Glob pattern
// such as HOME/containers/*/vm/qemu.pid) and, for each whose engine
// process is gone, kills the QEMU process it names (if that process still
// is the one that was started) and removes the pid file. VMs whose engine
// still runs — this process or another — are left alone. Pdeathsig kills
// QEMU with its engine in the common case; Sweep covers the rest (an
// engine that died between fork and the pid file, a QEMU that outlived a
// thread-bound Pdeathsig).
func Sweep(ctx context.Context, pattern string) ([]Stale, error) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("sweep stale VMs: %w", err)
	}
	var out []Stale
	var errs []error
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var p pidFile
		if err := json.Unmarshal(b, &p); err != nil {
			errs = append(errs, fmt.Errorf("sweep %s: %w", f, err))
			continue
		}
		if alive(p.EnginePID, p.EngineStart) {
			continue
		}
		st := Stale{PidFile: f, ID: p.ID}
		if alive(p.PID, p.Start) {
			st.PID = p.PID
			if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("sweep %s: kill qemu %d: %w", f, p.PID, err))
				continue
			}
			st.Killed = true
			// QEMU's parent is gone, so init reaps it; wait until it is.
			for deadline := time.Now().Add(5 * time.Second); alive(p.PID, p.Start) && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
		}
		os.Remove(f)
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}
