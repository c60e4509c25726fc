package rootfs

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// cloneFile makes dst an APFS clone of src with clonefile(2) and falls
// back to a sparse copy where the volume cannot clone.
func cloneFile(ctx context.Context, src, dst string) error {
	if err := unix.Clonefile(src, dst, unix.CLONE_NOFOLLOW); err == nil {
		return nil
	}
	s, err := os.Open(src)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := sparseCopy(ctx, d, s); err != nil {
		d.Close()
		return fmt.Errorf("sparse copy: %w", err)
	}
	return d.Close()
}
