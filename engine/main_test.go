package engine_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/internal/testenv"
)

// TestMain builds guestinit for the host arch and points the engine at
// it, as `make build` lays it out next to berth.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-engine-test")
	if err != nil {
		panic(err)
	}
	out, err := testenv.BuildGuestinit(dir, "../guestinit")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(launcher.GuestinitEnv, out)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
