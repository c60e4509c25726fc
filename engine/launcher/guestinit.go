package launcher

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
)

// GuestinitEnv names the environment variable that points at the
// guestinit binary to boot (overriding the search next to the berth
// executable).
const GuestinitEnv = "BERTH_GUESTINIT"

// FindGuestinit returns the guestinit binary for arch: $BERTH_GUESTINIT,
// else guestinit-linux-ARCH next to the running executable, or in the app
// bundle's Resources (Berth.app/Contents/MacOS/berth looks in
// Berth.app/Contents/Resources, where `make app` puts the one for the
// Mac's own architecture).
func FindGuestinit(arch string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		exe = ""
	}
	return findGuestinit(arch, exe, os.Getenv)
}

// findGuestinit is FindGuestinit for the executable exe ("" when
// unknown) and the environment getenv.
func findGuestinit(arch, exe string, getenv func(string) string) (string, error) {
	if p := getenv(GuestinitEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w", GuestinitEnv, err)
		}
		return p, nil
	}
	name := "guestinit-linux-" + arch
	var tried []string
	if exe != "" {
		dir := filepath.Dir(exe)
		for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, "..", "Resources", name)} {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			tried = append(tried, p)
		}
	}
	return "", errdefs.Unavailable(fmt.Errorf("no guestinit for linux/%s: looked at $%s and %s; build it with `make guest` (the app: `make app`)", arch, GuestinitEnv, strings.Join(tried, ", ")))
}
