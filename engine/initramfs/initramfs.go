// Package initramfs assembles the guest's initramfs at run time, in pure
// Go: guestinit as /init, /dev/console, and the kernel modules the boot
// needs when the kernel builds its drivers as modules.
//
// Layout of the archive (newc cpio, uncompressed: the kernel unpacks it
// faster than it could decompress it):
//
//	/init                     guestinit for the guest architecture
//	/dev/console              character device 5,1
//	/dev/null                 character device 1,3
//	/dev /proc /sys /run /tmp empty mount points
//	/lib/modules/NAME.ko      one file per module, uncompressed
//	/lib/modules/load.order   the boot modules' absolute paths, one per
//	                          line, each after its dependencies: guestinit
//	                          loads them with finit_module in this order
//	/lib/modules/late.order   the same for the modules guestinit loads once
//	                          its agent serves (9p, virtiofs, overlay)
package initramfs

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/internal/atomicfile"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// LoadOrderPath is where the archive lists the modules the boot needs,
// in load order.
const LoadOrderPath = "/lib/modules/load.order"

// LateOrderPath lists, in the same format, the modules guestinit loads
// once its agent serves (folder sharing, overlay): they are not on the
// path to a ready container.
const LateOrderPath = "/lib/modules/late.order"

// moduleDir is where the modules are placed inside the archive.
const moduleDir = "/lib/modules"

// featureModule maps a config option to the modules that provide it;
// late ones are not needed to reach a ready agent (folder sharing,
// overlay), and guestinit loads them after it serves.
type featureModule struct {
	option  string
	modules []string
	late    bool
}

// featureModules maps the kernel config options the guest needs (see
// kernel.GuestConfigs) to the modules that provide them, in load order
// where it matters beyond modules.dep.
func featureModules() []featureModule {
	return []featureModule{
		// All of Berth's devices are virtio-pci, on both backends.
		{"VIRTIO_PCI", []string{"virtio_pci"}, false},
		{"VIRTIO_BLK", []string{"virtio_blk"}, false},
		// ext4 uses crc32c through the crypto API; the soft dependency
		// is not in modules.dep, and crc32c-intel cannot run on TCG's
		// CPU model, so the generic implementation goes first.
		{"EXT4_FS", []string{"crc32c_generic", "ext4"}, false},
		{"VIRTIO_CONSOLE", []string{"virtio_console"}, false},
		{"VIRTIO_VSOCKETS", []string{"vmw_vsock_virtio_transport"}, false},
		{"VIRTIO_NET", []string{"virtio_net"}, false},
		{"NET_9P_VIRTIO", []string{"9pnet_virtio"}, true},
		{"NET_9P_FD", []string{"9pnet_fd"}, true},
		{"9P_FS", []string{"9p"}, true},
		{"VIRTIO_FS", []string{"virtiofs"}, true},
		{"OVERLAY_FS", []string{"overlay"}, true},
	}
}

// Modules returns the names of the modules k needs loaded for a guest
// that uses needs (nil: kernel.GuestConfigs, everything Berth can use; a
// backend narrows it with its own list, engine/vmm/backend.GuestConfigs):
// for each option k builds as a module, the module providing it. A kernel
// built with everything in needs none; one that lacks an option fails
// with an error naming it. Without a config file, every such module k
// ships is taken.
func Modules(k *kernel.Kernel, needs []kernel.ConfigNeed) ([]string, error) {
	boot, late, err := modulesByPhase(k, needs)
	return append(boot, late...), err
}

// modulesByPhase is Modules split into the modules the boot needs and
// the ones guestinit loads after its agent serves.
func modulesByPhase(k *kernel.Kernel, needs []kernel.ConfigNeed) (boot, late []string, err error) {
	if needs == nil {
		needs = kernel.GuestConfigs()
	}
	if err := k.Check(needs...); err != nil {
		return nil, nil, err
	}
	if k.ModulesDir == "" {
		return nil, nil, nil
	}
	want := map[string]bool{}
	for _, n := range needs {
		want[n.Option] = true
	}
	mods, err := k.ReadModules()
	if err != nil {
		return nil, nil, err
	}
	for _, f := range featureModules() {
		if !want[f.option] && f.option != "VIRTIO_PCI" {
			continue
		}
		switch k.Support(f.option) {
		case kernel.Builtin, kernel.Missing:
			continue
		}
		for _, m := range f.modules {
			if !mods.Has(m) {
				continue
			}
			if f.late {
				late = append(late, m)
			} else {
				boot = append(boot, m)
			}
		}
	}
	return boot, late, nil
}

// Spec says what goes into an initramfs.
type Spec struct {
	// Init is the guestinit binary for the guest architecture.
	Init string
	// Kernel is the kernel the initramfs is for; its modules are taken
	// from it. Nil: no modules.
	Kernel *kernel.Kernel
	// Needs are the kernel features the guest uses; nil means all of
	// kernel.GuestConfigs. Modules(Kernel, Needs) picks the modules.
	Needs []kernel.ConfigNeed
	// Modules names the modules to carry instead; their dependencies are
	// added from the kernel's modules.dep.
	Modules []string
	// CacheDir is where built archives are kept, by content.
	CacheDir string
	// Digest identifies Init and the kernel image by content; nil:
	// kernel.FileDigest, which reads them each time.
	Digest kernel.DigestFunc
}

// Build returns the path of the initramfs for spec, building it into
// CacheDir unless an archive for the same guestinit, kernel and module
// list is there already. It streams guestinit and the modules into the
// archive; only one decompressed module is held in memory at a time.
func Build(ctx context.Context, spec Spec) (string, error) {
	digest := spec.Digest
	if digest == nil {
		digest = kernel.FileDigest
	}
	initSum, err := digest(spec.Init)
	if err != nil {
		return "", fmt.Errorf("build initramfs: read init: %w", err)
	}
	// Module files relative to the kernel's modules dir: the boot's, and
	// the ones loaded after the agent serves (less any the boot has).
	var files, lateFiles []string
	h := sha256.New()
	h.Write(initSum[:])
	if spec.Kernel != nil {
		if files, lateFiles, err = moduleFiles(spec); err != nil {
			return "", fmt.Errorf("build initramfs: %w", err)
		}
		if len(files)+len(lateFiles) > 0 {
			ksum, err := digest(spec.Kernel.Path)
			if err != nil {
				return "", fmt.Errorf("build initramfs: %w", err)
			}
			h.Write(ksum[:])
			fmt.Fprintf(h, "\x00%s\x00%s\x00late\x00%s", spec.Kernel.ModulesDir, strings.Join(files, "\x00"), strings.Join(lateFiles, "\x00"))
		}
	}
	key := hex.EncodeToString(h.Sum(nil)[:16])
	dst := filepath.Join(spec.CacheDir, "initramfs-"+key+".cpio")
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	modDir := ""
	if spec.Kernel != nil {
		modDir = spec.Kernel.ModulesDir
	}
	if err := atomicfile.Write(dst, func(w io.Writer) error { return write(ctx, w, spec.Init, modDir, files, lateFiles) }); err != nil {
		return "", fmt.Errorf("build initramfs: %w", err)
	}
	return dst, nil
}

// moduleFiles returns the module files (relative to the kernel's modules
// directory) the boot loads, in load order, and the ones loaded once the
// agent serves, less any the boot has.
func moduleFiles(spec Spec) (files, lateFiles []string, err error) {
	names, late := spec.Modules, []string(nil)
	if names == nil {
		if names, late, err = modulesByPhase(spec.Kernel, spec.Needs); err != nil {
			return nil, nil, err
		}
	}
	if len(names)+len(late) == 0 {
		return nil, nil, nil
	}
	mods, err := spec.Kernel.ReadModules()
	if err != nil {
		return nil, nil, err
	}
	if files, err = mods.LoadOrder(names...); err != nil {
		return nil, nil, fmt.Errorf("for %s: %w", spec.Kernel, err)
	}
	if len(late) == 0 {
		return files, nil, nil
	}
	all, err := mods.LoadOrder(late...)
	if err != nil {
		return nil, nil, fmt.Errorf("for %s: %w", spec.Kernel, err)
	}
	inBoot := map[string]bool{}
	for _, f := range files {
		inBoot[f] = true
	}
	for _, f := range all {
		if !inBoot[f] {
			lateFiles = append(lateFiles, f)
		}
	}
	return files, lateFiles, nil
}

// write writes the archive: directories, /dev/console, /dev/null, /init
// (streamed from the file init), the modules (from modDir) and their load
// orders (boot and late).
func write(ctx context.Context, w io.Writer, init, modDir string, files, lateFiles []string) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	c := NewCPIOWriter(bw)
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "lib", "lib/modules"} {
		if err := c.WriteHeader(Entry{Name: d, Mode: os.ModeDir | 0o755}); err != nil {
			return err
		}
	}
	if err := c.WriteHeader(Entry{Name: "dev/console", Mode: os.ModeDevice | os.ModeCharDevice | 0o600, Major: 5, Minor: 1}); err != nil {
		return err
	}
	// Go's runtime opens /dev/null for fds 0-2 when the kernel could not
	// give init a console (console=hvc0 before virtio_console is loaded,
	// as on Virtualization.framework): without it guestinit dies at once.
	if err := c.WriteHeader(Entry{Name: "dev/null", Mode: os.ModeDevice | os.ModeCharDevice | 0o666, Major: 1, Minor: 3}); err != nil {
		return err
	}
	if err := writeFileFrom(c, "init", 0o755, init); err != nil {
		return err
	}
	for _, list := range []struct {
		files []string
		order string
	}{{files, LoadOrderPath}, {lateFiles, LateOrderPath}} {
		var order strings.Builder
		for _, rel := range list.files {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := path.Join(moduleDir, kernel.ModuleName(rel)+".ko")
			if err := writeModule(c, strings.TrimPrefix(name, "/"), filepath.Join(modDir, filepath.FromSlash(rel))); err != nil {
				return err
			}
			order.WriteString(name + "\n")
		}
		if len(list.files) > 0 {
			if err := c.WriteFile(strings.TrimPrefix(list.order, "/"), 0o644, []byte(order.String())); err != nil {
				return err
			}
		}
	}
	if err := c.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// writeFileFrom streams the regular file at src into the archive as
// name.
func writeFileFrom(c *CPIOWriter, name string, perm os.FileMode, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	return c.WriteFrom(name, perm, fi.Size(), f)
}

// writeModule adds the module file p as name, decompressing .ko.xz,
// .ko.zst and .ko.gz so guestinit can always load with plain
// finit_module. A plain .ko streams; a compressed one is decompressed
// into memory first (the archive needs its size before its bytes), one
// module of a few hundred KiB at a time.
func writeModule(c *CPIOWriter, name, p string) error {
	if filepath.Ext(p) == ".ko" {
		return writeFileFrom(c, name, 0o644, p)
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("read module: %w", err)
	}
	defer f.Close()
	var r io.Reader
	switch filepath.Ext(p) {
	case ".xz":
		r, err = xz.NewReader(bufio.NewReader(f))
	case ".zst":
		var d *zstd.Decoder
		if d, err = zstd.NewReader(f, zstd.WithDecoderConcurrency(1)); err == nil {
			defer d.Close()
			r = d
		}
	case ".gz":
		r, err = gzip.NewReader(f)
	default:
		return fmt.Errorf("read module %s: unknown suffix", p)
	}
	if err != nil {
		return fmt.Errorf("read module %s: %w", p, err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read module %s: %w", p, err)
	}
	return c.WriteFile(name, 0o644, data)
}
