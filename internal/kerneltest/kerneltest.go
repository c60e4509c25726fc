// Package kerneltest finds the Debian guest kernels the engine's tests
// boot, and skips (or, in CI, fails) through testenv's one rule when they
// are not there.
package kerneltest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berthvm/berth/internal/testenv"

	"github.com/berthvm/berth/engine/kernel"
)

// CacheDir is Berth's kernel cache, ~/.cache/berth/kernel (or under
// $XDG_CACHE_HOME), where assets/kernel/fetch-debian-kernel.sh unpacks.
func CacheDir(t testing.TB) string {
	t.Helper()
	d, err := os.UserCacheDir()
	if err != nil {
		testenv.Unavailable(t, "no user cache directory: %v", err)
	}
	return filepath.Join(d, "berth", "kernel")
}

// Debian returns the Debian kernel tree for arch that
// fetch-debian-kernel.sh left in the cache.
func Debian(t testing.TB, arch string) *kernel.Kernel {
	t.Helper()
	dir := filepath.Join(CacheDir(t), arch)
	k, err := kernel.Open(dir)
	if err != nil || k.ModulesDir == "" {
		testenv.Unavailable(t, "no Debian %s kernel tree in %s (run assets/kernel/fetch-debian-kernel.sh %s): %v", arch, dir, arch, err)
	}
	return k
}

// Berth returns Berth's own kernel for arch that `make kernel-berth` left
// in the cache (kernel.BerthDir), or skips: that kernel is an option
// built by hand (tens of minutes), never by CI, so its absence is not a
// missing prerequisite of the suite.
func Berth(t testing.TB, arch string) *kernel.Kernel {
	t.Helper()
	dir := kernel.BerthDir(CacheDir(t), arch)
	k, err := kernel.Open(dir)
	if err != nil {
		t.Skipf("no Berth %s kernel in %s (optional: `make kernel-berth` builds it, docs/kernel.md): %v", arch, dir, err)
	}
	return k
}
