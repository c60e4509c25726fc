package kernel

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/atomicfile"
	"github.com/klauspost/compress/zstd"
)

// DigestFunc returns the SHA-256 of the file at path. FileDigest reads the
// file; a caller that boots many VMs passes one that remembers (see
// engine/launcher).
type DigestFunc func(path string) ([sha256.Size]byte, error)

// FileDigest is the SHA-256 of the file at path, read as a stream.
func FileDigest(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("hash %s: %w", path, err)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// BootOption adjusts BootImage.
type BootOption func(*bootOptions)

type bootOptions struct {
	digest DigestFunc
}

// WithDigest makes BootImage identify the kernel by digest instead of
// hashing it on every call (default FileDigest).
func WithDigest(f DigestFunc) BootOption { return func(o *bootOptions) { o.digest = f } }

// BootImage returns the path of an uncompressed image of k that the
// hypervisors boot directly: the ELF vmlinux inside an x86 bzImage (QEMU
// boots it through PVH, which saves the seconds the guest would spend
// decompressing itself under TCG), or the arm64 Image inside Image.gz or
// an EFI zboot image (Virtualization.framework boots nothing else).
// Images that already are uncompressed are returned as they are.
// Extracted images are cached in cacheDir under the SHA-256 of the source
// image, so the work is done once per kernel; the extraction streams from
// the kernel file to the cache file, holding neither in memory.
func (k *Kernel) BootImage(ctx context.Context, cacheDir string, opts ...BootOption) (string, error) {
	o := bootOptions{digest: FileDigest}
	for _, f := range opts {
		f(&o)
	}
	var suffix string
	switch k.Format {
	case FormatELF, FormatImage:
		return k.Path, nil
	case FormatBzImage:
		suffix = "vmlinux"
	case FormatGzipImage, FormatZboot:
		suffix = "Image"
	default:
		return "", errdefs.InvalidArgument(fmt.Errorf("prepare boot image of %s: unknown format %q", k, k.Format))
	}
	sum, err := o.digest(k.Path)
	if err != nil {
		return "", fmt.Errorf("prepare boot image: %w", err)
	}
	dst := filepath.Join(cacheDir, hex.EncodeToString(sum[:16])+"-"+suffix)
	if fileExists(dst) {
		return dst, nil
	}
	f, err := os.Open(k.Path)
	if err != nil {
		return "", fmt.Errorf("prepare boot image: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("prepare boot image: %w", err)
	}
	err = atomicfile.Write(dst, func(w io.Writer) error {
		return extractBootImage(ctxWriter{ctx, w}, f, fi.Size(), k.Format)
	})
	if err != nil {
		return "", fmt.Errorf("prepare boot image of %s: %w", k, err)
	}
	return dst, nil
}

// extractBootImage writes the uncompressed image inside the size-byte
// kernel image src of format to w.
func extractBootImage(w io.Writer, src io.ReaderAt, size int64, format Format) error {
	switch format {
	case FormatBzImage:
		_, err := ExtractVmlinux(w, src, size)
		return err
	case FormatZboot:
		r, done, err := unzboot(src, size)
		if err != nil {
			return err
		}
		defer done()
		if _, err := io.Copy(w, r); err != nil {
			return fmt.Errorf("unzboot: %w", err)
		}
		return nil
	default:
		zr, err := gzip.NewReader(io.NewSectionReader(src, 0, size))
		if err != nil {
			return fmt.Errorf("gunzip: %w", err)
		}
		zr.Multistream(false)
		if _, err := io.Copy(w, zr); err != nil {
			return fmt.Errorf("gunzip: %w", err)
		}
		return nil
	}
}

// ExtractVmlinux writes the ELF vmlinux compressed inside an x86 bzImage
// (size bytes readable from bz) to w and returns its length. The setup
// header (boot protocol 2.08+) gives the payload's offset and length; the
// payload is xz (with the x86 BCJ filter, as Debian builds it), gzip or
// zstd, and ends with the uncompressed size as 4 little-endian bytes:
// appended by Kbuild for xz and zstd, gzip's own trailer (ISIZE) for
// gzip (as `make kernel-berth` builds it). It streams: memory use is the
// decompressor's window, not the image.
func ExtractVmlinux(w io.Writer, bz io.ReaderAt, size int64) (int64, error) {
	hdr := make([]byte, 0x250)
	if n, _ := bz.ReadAt(hdr, 0); n < len(hdr) || string(hdr[0x202:0x206]) != "HdrS" {
		return 0, errdefs.InvalidArgument(fmt.Errorf("extract vmlinux: not a bzImage"))
	}
	if proto := binary.LittleEndian.Uint16(hdr[0x206:]); proto < 0x208 {
		return 0, errdefs.InvalidArgument(fmt.Errorf("extract vmlinux: boot protocol %#x has no payload fields (need 2.08)", proto))
	}
	setupSects := int64(hdr[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects+1)*512 + int64(binary.LittleEndian.Uint32(hdr[0x248:]))
	n := int64(binary.LittleEndian.Uint32(hdr[0x24c:]))
	if n < 8 || start+n > size {
		return 0, errdefs.InvalidArgument(fmt.Errorf("extract vmlinux: payload [%d,+%d) outside the %d-byte image", start, n, size))
	}
	var tail [4]byte
	if _, err := bz.ReadAt(tail[:], start+n-4); err != nil {
		return 0, fmt.Errorf("extract vmlinux: %w", err)
	}
	want := int64(binary.LittleEndian.Uint32(tail[:]))
	// The size Kbuild appends is not part of an xz or zstd stream; gzip's
	// is its trailer, which the gzip reader checks.
	plen := n - 4
	var magic [2]byte
	if _, err := bz.ReadAt(magic[:], start); err != nil {
		return 0, fmt.Errorf("extract vmlinux: %w", err)
	}
	if magic == [2]byte{0x1f, 0x8b} {
		plen = n
	}
	payload := io.NewSectionReader(bz, start, plen)
	r, done, err := payloadReader(payload)
	if err != nil {
		return 0, fmt.Errorf("extract vmlinux: %w", err)
	}
	defer done()
	cw := &elfCheck{w: w}
	if _, err := io.Copy(cw, r); err != nil {
		return cw.n, fmt.Errorf("extract vmlinux: %w", err)
	}
	if cw.n != want {
		return cw.n, fmt.Errorf("extract vmlinux: got %d bytes, the image says %d", cw.n, want)
	}
	if !bytes.Equal(cw.magic[:], []byte("\x7fELF")) {
		return cw.n, fmt.Errorf("extract vmlinux: payload is not an ELF file")
	}
	return cw.n, nil
}

// payloadReader reads the bzImage payload p through its decompressor
// (chosen by magic); done releases it.
func payloadReader(p *io.SectionReader) (io.Reader, func(), error) {
	magic := make([]byte, 6)
	n, _ := p.ReadAt(magic, 0)
	magic = magic[:n]
	switch {
	case bytes.HasPrefix(magic, xzMagic):
		r, err := unxzKernel(p)
		return r, func() {}, err
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(p)
		if err != nil {
			return nil, nil, fmt.Errorf("gunzip: %w", err)
		}
		zr.Multistream(false)
		return zr, func() {}, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := newZstd(p)
		if err != nil {
			return nil, nil, err
		}
		return d, d.Close, nil
	}
	return nil, nil, errdefs.NotImplemented(fmt.Errorf("payload compression with magic % x is not supported (xz, gzip and zstd are)", magic))
}

func newZstd(r io.Reader) (*zstd.Decoder, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderMaxMemory(1<<30), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("unzstd: %w", err)
	}
	return d, nil
}

// elfCheck passes bytes on, counting them and keeping the first four.
type elfCheck struct {
	w     io.Writer
	n     int64
	magic [4]byte
}

func (c *elfCheck) Write(b []byte) (int, error) {
	if c.n < 4 {
		copy(c.magic[c.n:], b)
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// ctxWriter fails writes once ctx has ended, so a long extraction stops
// when its caller gives up.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(b)
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory, so readers never see a partial file.
func writeFileAtomic(path string, b []byte) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// unzboot returns a reader of the Image inside an EFI zboot image of size
// bytes (the header of drivers/firmware/efi/libstub/zboot-header.S: "zimg"
// at 4, payload offset and size at 8 and 12, compression name at 24);
// done releases it. gzip and zstd payloads are supported.
func unzboot(src io.ReaderAt, size int64) (r io.Reader, done func(), err error) {
	b := make([]byte, 0x40)
	if n, _ := src.ReadAt(b, 0); n < len(b) || string(b[4:8]) != "zimg" {
		return nil, nil, errdefs.InvalidArgument(errors.New("unzboot: not an EFI zboot image"))
	}
	off := int64(binary.LittleEndian.Uint32(b[8:]))
	n := int64(binary.LittleEndian.Uint32(b[12:]))
	comp := string(b[24:32])
	if i := bytes.IndexByte([]byte(comp), 0); i >= 0 {
		comp = comp[:i]
	}
	if off < 0x40 || n <= 0 || off+n > size {
		return nil, nil, errdefs.InvalidArgument(fmt.Errorf("unzboot: payload [%d,+%d) outside the %d-byte image", off, n, size))
	}
	payload := io.NewSectionReader(src, off, n)
	switch comp {
	case "gzip":
		zr, err := gzip.NewReader(payload)
		if err != nil {
			return nil, nil, fmt.Errorf("unzboot: %w", err)
		}
		zr.Multistream(false)
		return zr, func() {}, nil
	case "zstd", "zstd22":
		d, err := newZstd(payload)
		if err != nil {
			return nil, nil, fmt.Errorf("unzboot: %w", err)
		}
		return d, d.Close, nil
	}
	return nil, nil, errdefs.NotImplemented(fmt.Errorf("unzboot: %q compression is not supported (gzip and zstd are)", comp))
}
