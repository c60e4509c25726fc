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
// bundle's Resources.
func FindGuestinit(arch string) (string, error) {
	if p := os.Getenv(GuestinitEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w", GuestinitEnv, err)
		}
		return p, nil
	}
	name := "guestinit-linux-" + arch
	var tried []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, "..", "Resources", name)} {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			tried = append(tried, p)
		}
	}
	return "", errdefs.Unavailable(fmt.Errorf("no guestinit for linux/%s: looked at $%s and %s; build it with `make guest`", arch, GuestinitEnv, strings.Join(tried, ", ")))
}
