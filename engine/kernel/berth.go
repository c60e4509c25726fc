package kernel

import "path/filepath"

// BerthDir is where `make kernel-berth` (assets/linux/build-berth-kernel.sh)
// leaves Berth's own guest kernel for arch under the kernel cache:
// CACHE/berth-ARCH/boot/vmlinuz-RELEASE with boot/config-RELEASE beside
// it, everything the guest uses built in and no lib/modules. Resolve never
// picks it on its own (the default stays Debian's kernel); $BERTH_KERNEL
// or a kernel.json choice naming this directory boots it.
func BerthDir(cacheDir, arch string) string {
	return filepath.Join(cacheDir, "berth-"+arch)
}
