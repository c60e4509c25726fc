// Package kerneltest finds the kernels and guest tools the engine's tests
// boot, and skips (or, in CI, fails) with the reason when they are not
// there.
package kerneltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/berthvm/berth/engine/kernel"
)

// Unavailable skips the test with the reason, or fails it when the
// environment says CI=true: CI installs everything the tests need, so a
// missing piece there is a broken setup, not a reason to pass.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and a test prerequisite is missing: "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

// CacheDir is Berth's kernel cache, ~/.cache/berth/kernel (or under
// $XDG_CACHE_HOME), where assets/kernel/fetch-debian-kernel.sh unpacks.
func CacheDir(t testing.TB) string {
	t.Helper()
	d, err := os.UserCacheDir()
	if err != nil {
		Unavailable(t, "no user cache directory: %v", err)
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
		Unavailable(t, "no Debian %s kernel tree in %s (run assets/kernel/fetch-debian-kernel.sh %s): %v", arch, dir, arch, err)
	}
	return k
}

// LookPath returns the path of the named program, or skips (fails in CI)
// saying which package provides it.
func LookPath(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s not found (apt-get install %s)", name, pkg)
	}
	return p
}
