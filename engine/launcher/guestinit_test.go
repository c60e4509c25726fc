package launcher

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
)

// TestFindGuestinitInAppBundle: the berth binary in Berth.app's
// Contents/MacOS finds guestinit for its architecture in
// Contents/Resources (the layout `make app` makes), a binary next to the
// executable wins, $BERTH_GUESTINIT wins over both, and a missing one
// names every place looked at and what to run.
func TestFindGuestinitInAppBundle(t *testing.T) {
	contents := filepath.Join(t.TempDir(), "Berth.app", "Contents")
	exe := filepath.Join(contents, "MacOS", "berth")
	res := filepath.Join(contents, "Resources", "guestinit-linux-arm64")
	for _, p := range []string{exe, res} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("fake binary"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	if got, err := findGuestinit("arm64", exe, getenv); err != nil || got != filepath.Join(contents, "MacOS", "..", "Resources", "guestinit-linux-arm64") {
		t.Errorf("findGuestinit(arm64) = %q, %v; want the one in Resources", got, err)
	}
	_, err := findGuestinit("amd64", exe, getenv)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "guestinit-linux-amd64") ||
		!strings.Contains(err.Error(), filepath.Join("Contents", "MacOS", "..", "Resources")) || !strings.Contains(err.Error(), "make app") {
		t.Errorf("findGuestinit(amd64) in an arm64 bundle: %v", err)
	}

	next := filepath.Join(contents, "MacOS", "guestinit-linux-arm64")
	if err := os.WriteFile(next, []byte("fake binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := findGuestinit("arm64", exe, getenv); err != nil || got != next {
		t.Errorf("findGuestinit(arm64) with one next to the executable = %q, %v", got, err)
	}

	env[GuestinitEnv] = res
	if got, err := findGuestinit("arm64", exe, getenv); err != nil || got != res {
		t.Errorf("findGuestinit with $%s = %q, %v", GuestinitEnv, got, err)
	}
	env[GuestinitEnv] = filepath.Join(contents, "nope")
	if _, err := findGuestinit("arm64", exe, getenv); err == nil || !strings.Contains(err.Error(), "$"+GuestinitEnv) {
		t.Errorf("findGuestinit with a missing $%s = %v", GuestinitEnv, err)
	}
}
