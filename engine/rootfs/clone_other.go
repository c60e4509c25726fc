//go:build unix && !linux && !darwin

package rootfs

import (
	"context"
	"fmt"
	"os"
)

// cloneFile copies src to dst keeping holes.
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
	if err := sparseCopy(ctx, d, s); err != nil {
		d.Close()
		return fmt.Errorf("sparse copy: %w", err)
	}
	return d.Close()
}
