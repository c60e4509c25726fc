package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/rootfs"
)

// Unpack writes the root filesystem of the image ref names as a
// standalone ext4 image at output (an absolute path that must not exist),
// sized to size bytes, or to its content plus free space when size is 0:
// for inspection, or for another VMM.
func (e *Engine) Unpack(ctx context.Context, ref, output string, size int64) error {
	if !filepath.IsAbs(output) {
		return errdefs.InvalidArgument(fmt.Errorf("unpack %s: output %q must be an absolute path", ref, output))
	}
	if size < 0 {
		return errdefs.InvalidArgument(fmt.Errorf("unpack %s: size %d must not be negative", ref, size))
	}
	if _, err := os.Lstat(output); err == nil {
		return errdefs.AlreadyExists(fmt.Errorf("unpack %s: %s exists: remove it or choose another file", ref, output))
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpack %s: %w", ref, err)
	}
	if fi, err := os.Stat(filepath.Dir(output)); err != nil || !fi.IsDir() {
		return errdefs.InvalidArgument(fmt.Errorf("unpack %s: directory %s does not exist", ref, filepath.Dir(output)))
	}
	img, release, err := e.images.Checkout(ctx, ref)
	if err != nil {
		return err
	}
	defer release()
	if err := rootfs.Unpack(ctx, img, output, size); err != nil {
		return fmt.Errorf("unpack %s to %s: %w", ref, output, err)
	}
	return nil
}
