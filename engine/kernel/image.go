package kernel

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"

	"github.com/berthvm/berth/engine/errdefs"
)

// BootImage returns the path of an uncompressed image of k that the
// hypervisors boot directly: the ELF vmlinux inside an x86 bzImage (QEMU
// boots it through PVH, which saves the seconds the guest would spend
// decompressing itself under TCG), or the arm64 Image inside Image.gz or
// an EFI zboot image (Virtualization.framework boots nothing else). Images that already are
// uncompressed are returned as they are. Extracted images are cached in
// cacheDir under the SHA-256 of the source image, so the work is done once
// per kernel.
func (k *Kernel) BootImage(ctx context.Context, cacheDir string) (string, error) {
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
	src, err := os.ReadFile(k.Path)
	if err != nil {
		return "", fmt.Errorf("prepare boot image: %w", err)
	}
	sum := sha256.Sum256(src)
	dst := filepath.Join(cacheDir, hex.EncodeToString(sum[:16])+"-"+suffix)
	if fileExists(dst) {
		return dst, nil
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var out []byte
	switch k.Format {
	case FormatBzImage:
		out, err = ExtractVmlinux(src)
	case FormatZboot:
		out, err = unzboot(src, -1)
	default:
		out, err = gunzip(src)
	}
	if err != nil {
		return "", fmt.Errorf("prepare boot image of %s: %w", k, err)
	}
	if err := writeFileAtomic(dst, out); err != nil {
		return "", fmt.Errorf("prepare boot image of %s: %w", k, err)
	}
	return dst, nil
}

// ExtractVmlinux returns the ELF vmlinux compressed inside an x86 bzImage.
// The setup header (boot protocol 2.08+) gives the payload's offset and
// length; the payload is xz (with the x86 BCJ filter, as Debian builds
// it), gzip or zstd, followed by the uncompressed size as 4 little-endian
// bytes.
func ExtractVmlinux(bz []byte) ([]byte, error) {
	if len(bz) < 0x250 || string(bz[0x202:0x206]) != "HdrS" {
		return nil, errdefs.InvalidArgument(fmt.Errorf("extract vmlinux: not a bzImage"))
	}
	if proto := binary.LittleEndian.Uint16(bz[0x206:]); proto < 0x208 {
		return nil, errdefs.InvalidArgument(fmt.Errorf("extract vmlinux: boot protocol %#x has no payload fields (need 2.08)", proto))
	}
	setupSects := int(bz[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(bz[0x248:]))
	n := int(binary.LittleEndian.Uint32(bz[0x24c:]))
	if n < 8 || start+n > len(bz) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("extract vmlinux: payload [%d,+%d) outside the %d-byte image", start, n, len(bz)))
	}
	payload := bz[start : start+n-4]
	size := int(binary.LittleEndian.Uint32(bz[start+n-4:]))
	var out []byte
	var err error
	switch {
	case bytes.HasPrefix(payload, xzMagic):
		out, err = unxzKernel(payload, size)
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		out, err = gunzip(payload)
	case bytes.HasPrefix(payload, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		out, err = unzstd(payload)
	default:
		return nil, errdefs.NotImplemented(fmt.Errorf("extract vmlinux: payload compression with magic % x is not supported (xz, gzip and zstd are)", payload[:min(6, len(payload))]))
	}
	if err != nil {
		return nil, fmt.Errorf("extract vmlinux: %w", err)
	}
	if len(out) != size {
		return nil, fmt.Errorf("extract vmlinux: got %d bytes, the image says %d", len(out), size)
	}
	if !bytes.HasPrefix(out, []byte("\x7fELF")) {
		return nil, fmt.Errorf("extract vmlinux: payload is not an ELF file")
	}
	return out, nil
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	zr.Multistream(false)
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	return out, nil
}

func unzstd(b []byte) ([]byte, error) {
	d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	out, err := d.DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("unzstd: %w", err)
	}
	return out, nil
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory, so readers never see a partial file.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// unzboot returns the Image inside an EFI zboot image (the header of
// drivers/firmware/efi/libstub/zboot-header.S: "zimg" at 4, payload
// offset and size at 8 and 12, compression name at 24), or only its first
// limit bytes when limit >= 0. gzip and zstd payloads are supported.
func unzboot(b []byte, limit int) ([]byte, error) {
	if len(b) < 0x40 || string(b[4:8]) != "zimg" {
		return nil, errdefs.InvalidArgument(fmt.Errorf("unzboot: not an EFI zboot image"))
	}
	off := int(binary.LittleEndian.Uint32(b[8:]))
	size := int(binary.LittleEndian.Uint32(b[12:]))
	comp := string(b[24:32])
	if i := bytes.IndexByte([]byte(comp), 0); i >= 0 {
		comp = comp[:i]
	}
	if off < 0x40 || size <= 0 || off+size > len(b) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("unzboot: payload [%d,+%d) outside the %d-byte image", off, size, len(b)))
	}
	payload := b[off : off+size]
	var r io.Reader
	switch comp {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(payload))
		if err != nil {
			return nil, fmt.Errorf("unzboot: %w", err)
		}
		zr.Multistream(false)
		r = zr
	case "zstd", "zstd22":
		d, err := zstd.NewReader(bytes.NewReader(payload), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, fmt.Errorf("unzboot: %w", err)
		}
		defer d.Close()
		r = d
	default:
		return nil, errdefs.NotImplemented(fmt.Errorf("unzboot: %q compression is not supported (gzip and zstd are)", comp))
	}
	if limit >= 0 {
		out := make([]byte, limit)
		if _, err := io.ReadFull(r, out); err != nil {
			return nil, fmt.Errorf("unzboot: %w", err)
		}
		return out, nil
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("unzboot: %w", err)
	}
	return out, nil
}
