package ext4

import (
	"bytes"
	"context"
	"fmt"
	"io"
)

var zeroBlock [blockSize]byte

// writeData streams size bytes of r into newly allocated data blocks and
// records them as n's extents. All-zero blocks are left as holes.
func (w *Writer) writeData(ctx context.Context, n *node, r io.Reader, size int64) error {
	var logical uint32
	remaining := size
	for remaining > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := w.scratch
		if int64(len(chunk)) > remaining {
			chunk = chunk[:remaining]
		}
		if _, err := io.ReadFull(r, chunk); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read content: %w", err)
		}
		remaining -= int64(len(chunk))
		// Pad the last partial block with zeros.
		if tail := len(chunk) % blockSize; tail != 0 {
			full := chunk[:len(chunk)+blockSize-tail]
			clear(full[len(chunk):])
			chunk = full
		}
		for off := 0; off < len(chunk); off += blockSize {
			b := chunk[off : off+blockSize]
			if !bytes.Equal(b, zeroBlock[:]) {
				if err := w.appendBlock(n, logical, b); err != nil {
					return err
				}
			}
			logical++
		}
	}
	return nil
}

// appendBlock writes one block of n at the logical block number, at the
// next free physical block.
func (w *Writer) appendBlock(n *node, logical uint32, b []byte) error {
	phys := w.next
	if len(w.buf)+blockSize > w.opts.bufferBytes {
		if err := w.flush(); err != nil {
			return err
		}
	}
	w.buf = growBuffer(w.buf, len(b), w.opts.bufferBytes)
	w.buf = append(w.buf, b...)
	w.next++
	if k := len(n.extents); k > 0 {
		e := &n.extents[k-1]
		if e.logical+e.length == logical && e.physical+uint64(e.length) == phys && e.length < maxExtentLen {
			e.length++
			return nil
		}
	}
	n.extents = append(n.extents, extent{logical: logical, physical: phys, length: 1})
	return nil
}

// flush writes the pending data blocks.
func (w *Writer) flush() error {
	if len(w.buf) == 0 {
		w.bufStart = w.next
		return nil
	}
	if _, err := w.f.WriteAt(w.buf, int64(w.bufStart)*blockSize); err != nil {
		w.err = err
		return err
	}
	w.buf = w.buf[:0]
	w.bufStart = w.next
	return nil
}

// growBuffer returns buf with room for n more bytes, at most limit in
// all. A buffer starts at 64 KiB and doubles, so an image of a few files
// needs no buffer of the full limit, and one of gigabytes allocates about
// twice the limit in all.
func growBuffer(buf []byte, n, limit int) []byte {
	if len(buf)+n <= cap(buf) {
		return buf
	}
	c := min(max(2*cap(buf), 64<<10, len(buf)+n), max(limit, len(buf)+n))
	nb := make([]byte, len(buf), c)
	copy(nb, buf)
	return nb
}
