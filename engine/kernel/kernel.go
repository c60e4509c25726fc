// Package kernel finds, describes and prepares the Linux kernel Berth boots
// in its micro-VMs.
//
// A kernel is either a single image file (bzImage, ELF vmlinux, arm64
// Image, gzip'd Image, EFI zboot) or a directory unpacked from a distribution kernel
// package, laid out as
//
//	DIR/boot/vmlinuz-VERSION
//	DIR/boot/config-VERSION            (optional: tells built-in from module)
//	DIR/lib/modules/VERSION/modules.dep
//
// which is what assets/kernel/fetch-debian-kernel.sh (Linux) and [Fetch]
// (a kernel package, such as the pinned default) leave behind. [Resolve] picks the
// active kernel; [Open] describes one; [Kernel.BootImage] turns it into the
// uncompressed image the hypervisors boot fastest (Virtualization.framework
// accepts nothing else on arm64).
package kernel

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
)

// Format is the on-disk format of a kernel image.
type Format string

// The kernel image formats Berth recognises.
const (
	// FormatBzImage is an x86 bzImage: a real-mode setup header followed by
	// a compressed vmlinux.
	FormatBzImage Format = "bzImage"
	// FormatELF is an uncompressed ELF vmlinux (x86: boots through PVH).
	FormatELF Format = "ELF"
	// FormatImage is an uncompressed arm64 Image (ARM\x64 magic at 0x38).
	FormatImage Format = "Image"
	// FormatGzipImage is a gzip-compressed arm64 Image (Image.gz).
	FormatGzipImage Format = "gzip Image"
	// FormatZboot is an EFI zboot image: a small EFI program carrying a
	// compressed arm64 Image (CONFIG_EFI_ZBOOT, vmlinuz.efi).
	FormatZboot Format = "EFI zboot"
)

// Kernel describes one kernel Berth can boot.
type Kernel struct {
	// Path is the kernel image file.
	Path string
	// Version is the kernel release (uname -r), e.g. 6.1.0-56-arm64, when
	// it is known from the file name or the image.
	Version string
	// Arch is the guest architecture in GOARCH terms: amd64 or arm64.
	Arch string
	// Format is the image format of Path.
	Format Format
	// ModulesDir is lib/modules/VERSION (holding modules.dep) or "" when
	// the kernel comes without modules.
	ModulesDir string
	// ConfigPath is boot/config-VERSION, or "" when there is none.
	ConfigPath string
	// Config holds the CONFIG_ options read from ConfigPath (values "y",
	// "m", strings, numbers); nil when there is no config file.
	Config map[string]string
	// Origin is where Resolve found the kernel; "" from Open.
	Origin Origin
}

// Open describes the kernel at path: a kernel image file, or a directory
// unpacked from a kernel package (boot/vmlinuz-* with lib/modules/VERSION).
// A kernel file next to ../lib/modules/VERSION or with a config-VERSION
// beside it gets those too.
func Open(path string) (*Kernel, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, errdefs.NotFound(fmt.Errorf("open kernel %s: %w", path, err))
	}
	root := ""
	file := path
	if st.IsDir() {
		root = path
		file, err = newestVmlinuz(filepath.Join(path, "boot"))
		if err != nil {
			return nil, fmt.Errorf("open kernel directory %s: %w", path, err)
		}
	} else if filepath.Base(filepath.Dir(path)) == "boot" {
		root = filepath.Dir(filepath.Dir(path))
	}
	arch, format, err := detect(file)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Path: file, Arch: arch, Format: format}
	if v, ok := strings.CutPrefix(filepath.Base(file), "vmlinuz-"); ok {
		k.Version = v
	}
	if k.Version != "" {
		if cfg := filepath.Join(filepath.Dir(file), "config-"+k.Version); fileExists(cfg) {
			k.ConfigPath = cfg
		}
		if root != "" {
			if md := filepath.Join(root, "lib", "modules", k.Version); fileExists(filepath.Join(md, "modules.dep")) {
				k.ModulesDir = md
			}
		}
	}
	if k.ConfigPath != "" {
		k.Config, err = readConfig(k.ConfigPath)
		if err != nil {
			return nil, err
		}
	}
	return k, nil
}

// newestVmlinuz returns the boot/vmlinuz-* in dir with the highest version
// (in version order, so 6.1.0-10 sorts after 6.1.0-9).
func newestVmlinuz(dir string) (string, error) {
	m, _ := filepath.Glob(filepath.Join(dir, "vmlinuz-*"))
	if len(m) == 0 {
		return "", errdefs.NotFound(fmt.Errorf("no vmlinuz-* in %s", dir))
	}
	sort.Slice(m, func(i, j int) bool { return versionLess(m[i], m[j]) })
	return m[len(m)-1], nil
}

// versionLess compares two strings the way `sort -V` would for kernel
// releases: runs of digits numerically, everything else bytewise.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, ra := leadingDigits(a)
		db, rb := leadingDigits(b)
		if da != "" && db != "" {
			da, db = strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
			if len(da) != len(db) {
				return len(da) < len(db)
			}
			if da != db {
				return da < db
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// detect reads the first bytes of a kernel image and names its
// architecture and format.
func detect(path string) (arch string, format Format, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("read kernel image %s: %w", path, err)
	}
	defer f.Close()
	hdr := make([]byte, 0x240)
	n, err := io.ReadFull(f, hdr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", "", fmt.Errorf("read kernel image %s: %w", path, err)
	}
	hdr = hdr[:n]
	switch {
	case len(hdr) >= 0x206 && string(hdr[0x202:0x206]) == "HdrS":
		return "amd64", FormatBzImage, nil
	case len(hdr) >= 0x3c && binary.LittleEndian.Uint32(hdr[0x38:]) == arm64Magic:
		return "arm64", FormatImage, nil
	case len(hdr) >= 20 && bytes.HasPrefix(hdr, []byte("\x7fELF")):
		switch binary.LittleEndian.Uint16(hdr[18:]) {
		case 62: // EM_X86_64
			return "amd64", FormatELF, nil
		case 183: // EM_AARCH64
			return "arm64", FormatELF, nil
		}
		return "", "", errdefs.InvalidArgument(fmt.Errorf("kernel image %s: ELF for an unsupported machine %d", path, binary.LittleEndian.Uint16(hdr[18:])))
	case len(hdr) >= 2 && hdr[0] == 0x1f && hdr[1] == 0x8b:
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", "", fmt.Errorf("read kernel image %s: %w", path, err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", "", errdefs.InvalidArgument(fmt.Errorf("kernel image %s: %w", path, err))
		}
		inner := make([]byte, 0x40)
		if _, err := io.ReadFull(zr, inner); err != nil || binary.LittleEndian.Uint32(inner[0x38:]) != arm64Magic {
			return "", "", errdefs.InvalidArgument(fmt.Errorf("kernel image %s: gzip data that is not an arm64 Image", path))
		}
		return "arm64", FormatGzipImage, nil
	case len(hdr) >= 0x40 && string(hdr[0:2]) == "MZ" && string(hdr[4:8]) == "zimg":
		fi, err := f.Stat()
		if err != nil {
			return "", "", fmt.Errorf("read kernel image %s: %w", path, err)
		}
		r, done, err := unzboot(f, fi.Size())
		if err != nil {
			return "", "", fmt.Errorf("kernel image %s: %w", path, err)
		}
		defer done()
		img := make([]byte, 0x40)
		if _, err := io.ReadFull(r, img); err != nil {
			return "", "", fmt.Errorf("kernel image %s: unzboot: %w", path, err)
		}
		if binary.LittleEndian.Uint32(img[0x38:]) != arm64Magic {
			return "", "", errdefs.NotImplemented(fmt.Errorf("kernel image %s: EFI zboot image of something other than an arm64 Image", path))
		}
		return "arm64", FormatZboot, nil
	}
	return "", "", errdefs.InvalidArgument(fmt.Errorf("kernel image %s: not a bzImage, ELF vmlinux, arm64 Image, Image.gz or EFI zboot image", path))
}

// arm64Magic is "ARM\x64" read little-endian, at offset 0x38 of an arm64
// Image.
const arm64Magic = 0x644d5241

// String is a one-line description: version, arch, format and path.
func (k *Kernel) String() string {
	v := k.Version
	if v == "" {
		v = "unknown version"
	}
	return fmt.Sprintf("Linux %s (%s, %s) at %s", v, k.Arch, k.Format, k.Path)
}
