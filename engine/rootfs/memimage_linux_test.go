package rootfs

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// memImage returns an empty file that lives in memory (a memfd), and a
// path by which another process (e2fsck) can open it.
func memImage(t testing.TB) (*os.File, string) {
	t.Helper()
	fd, err := unix.MemfdCreate("berth-fuzz.ext4", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatalf("memfd_create: %v", err)
	}
	return os.NewFile(uintptr(fd), "memfd:berth-fuzz.ext4"), fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)
}
