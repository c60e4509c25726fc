//go:build unix

package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// sparseCopy copies src into dst keeping holes: it skips the holes
// SEEK_DATA/SEEK_HOLE report and does not write all-zero 4 KiB blocks.
func sparseCopy(ctx context.Context, dst, src *os.File) error {
	info, err := src.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	buf := make([]byte, 1<<20)
	zero := make([]byte, 4096)
	copyRange := func(start, end int64) error {
		for off := start; off < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := int(min(int64(len(buf)), end-off))
			if _, err := src.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read: %w", err)
			}
			for b := 0; b < n; {
				e := min(b+len(zero), n)
				if bytes.Equal(buf[b:e], zero[:e-b]) {
					b = e
					continue
				}
				// Write a run of non-zero blocks at once.
				r := e
				for r < n {
					re := min(r+len(zero), n)
					if bytes.Equal(buf[r:re], zero[:re-r]) {
						break
					}
					r = re
				}
				if _, err := dst.WriteAt(buf[b:r], off+int64(b)); err != nil {
					return fmt.Errorf("write: %w", err)
				}
				b = r
			}
			off += int64(n)
		}
		return nil
	}
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(src.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil { // no SEEK_DATA here: copy the rest block by block
			if err := copyRange(off, size); err != nil {
				return err
			}
			break
		}
		hole, err := unix.Seek(int(src.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if err := copyRange(data, hole); err != nil {
			return err
		}
		off = hole
	}
	if err := dst.Truncate(size); err != nil {
		return fmt.Errorf("set size: %w", err)
	}
	return nil
}
