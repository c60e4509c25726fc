//go:build !linux

package rootfs

import (
	"os"
	"path/filepath"
	"testing"
)

// memImage returns an empty file for an image, and its path; without
// memfd it is a temporary file.
func memImage(t testing.TB) (*os.File, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "fuzz-*.ext4")
	if err != nil {
		t.Fatal(err)
	}
	return f, filepath.Clean(f.Name())
}
