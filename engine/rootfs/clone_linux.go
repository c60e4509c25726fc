package rootfs

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// cloneFile makes dst share src's blocks with the FICLONE ioctl (btrfs,
// XFS with reflink, bcachefs) and falls back to a sparse copy.
func cloneFile(ctx context.Context, src, dst string) error {
	s, err := os.Open(src)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := unix.IoctlFileClone(int(d.Fd()), int(s.Fd())); err != nil {
		if err := sparseCopy(ctx, d, s); err != nil {
			d.Close()
			return fmt.Errorf("sparse copy: %w", err)
		}
	}
	return d.Close()
}
