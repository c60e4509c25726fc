package engine_test

import (
	"os"
	"testing"

	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/internal/testenv"
)

// TestMain builds guestinit for the host arch and points the engine at
// it, as `make build` lays it out next to berth.
func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithGuestinit(m, "../guestinit", launcher.GuestinitEnv))
}
