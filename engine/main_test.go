package engine_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/berthvm/berth/engine/launcher"
)

// TestMain builds guestinit for the host arch and points the engine at
// it, as `make build` lays it out next to berth.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-engine-test")
	if err != nil {
		panic(err)
	}
	out := filepath.Join(dir, "guestinit-linux-"+runtime.GOARCH)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "../guestinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build guestinit: %v\n%s", err, b)
		os.Exit(1)
	}
	os.Setenv(launcher.GuestinitEnv, out)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
