package initramfs_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berthvm/berth/internal/testenv"

	"github.com/berthvm/berth/engine/initramfs"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/internal/kerneltest"
)

// list runs Debian's cpio -t (and -tv) over the archive.
func list(t *testing.T, archive string, verbose bool) []string {
	t.Helper()
	cpio := testenv.RequireCommand(t, "cpio", "cpio")
	flags := "-t"
	if verbose {
		flags = "-tv"
	}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(cpio, flags, "--quiet")
	cmd.Stdin = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio %s: %v\n%s", flags, err, stderr.Bytes())
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// extract unpacks one member with cpio -i and returns its contents.
func extract(t *testing.T, archive, member string) []byte {
	t.Helper()
	cpio := testenv.RequireCommand(t, "cpio", "cpio")
	dir := t.TempDir()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(cpio, "-i", "-d", "--quiet", member)
	cmd.Dir = dir
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i %s: %v\n%s", member, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, member))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fakeInit(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "guestinit")
	if err := os.WriteFile(p, []byte("#!init\x00 not a real binary, 37 bytes"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildListsWithCPIO(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			k := kerneltest.Debian(t, arch)
			cache := t.TempDir()
			init := fakeInit(t)
			p, err := initramfs.Build(context.Background(), initramfs.Spec{Init: init, Kernel: k, CacheDir: cache})
			if err != nil {
				t.Fatal(err)
			}
			names := list(t, p, false)
			for _, want := range []string{"init", "dev/console", "dev/null", "dev", "proc", "sys", "lib/modules/load.order", "lib/modules/ext4.ko", "lib/modules/virtio_blk.ko", "lib/modules/crc32c_generic.ko", "lib/modules/vmw_vsock_virtio_transport.ko", "lib/modules/9p.ko"} {
				if !slices.Contains(names, want) {
					t.Errorf("archive lacks %s; has %v", want, names)
				}
			}
			// virtio itself is built into the arm64 kernel, a module on amd64.
			if got, want := slices.Contains(names, "lib/modules/virtio.ko"), arch == "amd64"; got != want {
				t.Errorf("lib/modules/virtio.ko present = %v, want %v", got, want)
			}
			for _, l := range list(t, p, true) {
				if strings.HasSuffix(l, " dev/console") && !(strings.HasPrefix(l, "crw-------") && strings.Contains(l, " 5,   1 ")) {
					t.Errorf("dev/console is not char 5,1 rw-------: %q", l)
				}
				if strings.HasSuffix(l, " dev/null") && !(strings.HasPrefix(l, "crw-rw-rw-") && strings.Contains(l, " 1,   3 ")) {
					t.Errorf("dev/null is not char 1,3 rw-rw-rw-: %q", l)
				}
			}
			if got := extract(t, p, "init"); !bytes.Equal(got, mustRead(t, init)) {
				t.Error("init differs from the guestinit file")
			}
			// Boot modules, then the late ones (loaded after the agent
			// serves): together in dependency order, 9p and friends late.
			boot := strings.Fields(string(extract(t, p, "lib/modules/load.order")))
			late := strings.Fields(string(extract(t, p, "lib/modules/late.order")))
			for _, m := range []string{"9p", "9pnet_virtio", "9pnet_fd", "virtiofs", "overlay"} {
				if !slices.Contains(late, "/lib/modules/"+m+".ko") || slices.Contains(boot, "/lib/modules/"+m+".ko") {
					t.Errorf("%s.ko should be in late.order only: boot %v late %v", m, boot, late)
				}
			}
			for _, m := range []string{"ext4", "virtio_blk", "virtio_console"} {
				if !slices.Contains(boot, "/lib/modules/"+m+".ko") {
					t.Errorf("%s.ko missing from load.order: %v", m, boot)
				}
			}
			order := append(boot, late...)
			pos := map[string]int{}
			for i, m := range order {
				if !strings.HasPrefix(m, "/lib/modules/") || !strings.HasSuffix(m, ".ko") {
					t.Errorf("load.order line %q is not /lib/modules/NAME.ko", m)
				}
				if !slices.Contains(names, strings.TrimPrefix(m, "/")) {
					t.Errorf("load.order names %s, which is not in the archive", m)
				}
				pos[kernel.ModuleName(m)] = i
			}
			for _, ab := range [][2]string{{"crc32c_generic", "ext4"}, {"jbd2", "ext4"}, {"virtio_pci", "virtio_blk"}, {"vsock", "vmw_vsock_virtio_transport"}, {"9pnet", "9pnet_virtio"}, {"fuse", "virtiofs"}} {
				if pos[ab[0]] >= pos[ab[1]] {
					t.Errorf("%s does not load before %s: %v", ab[0], ab[1], order)
				}
			}
			got := extract(t, p, "lib/modules/ext4.ko")
			want := mustRead(t, filepath.Join(k.ModulesDir, "kernel/fs/ext4/ext4.ko"))
			if !bytes.Equal(got, want) {
				t.Error("ext4.ko in the archive differs from the kernel's")
			}

			// Same inputs: the cached archive. Another init: a new one.
			if p2, err := initramfs.Build(context.Background(), initramfs.Spec{Init: init, Kernel: k, CacheDir: cache}); err != nil || p2 != p {
				t.Errorf("rebuild = %s, %v; want cached %s", p2, err, p)
			}
			init2 := fakeInit(t)
			os.WriteFile(init2, []byte("another init"), 0o755)
			if p3, err := initramfs.Build(context.Background(), initramfs.Spec{Init: init2, Kernel: k, CacheDir: cache}); err != nil || p3 == p {
				t.Errorf("build with another init = %s, %v; want a new archive", p3, err)
			}
		})
	}
}

func TestBuildWithoutModules(t *testing.T) {
	p, err := initramfs.Build(context.Background(), initramfs.Spec{Init: fakeInit(t), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	names := list(t, p, false)
	if slices.Contains(names, "lib/modules/load.order") || !slices.Contains(names, "init") {
		t.Errorf("archive without a kernel lists %v", names)
	}
}

func TestModulesFollowConfig(t *testing.T) {
	k := kerneltest.Debian(t, "amd64")
	all, err := initramfs.Modules(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(all, "ext4") || !slices.Contains(all, "virtio_pci") {
		t.Fatalf("Modules = %v", all)
	}
	// The same kernel with ext4 built in needs neither ext4 nor crc32c.
	k2 := *k
	k2.Config = map[string]string{}
	for key, v := range k.Config {
		k2.Config[key] = v
	}
	k2.Config["CONFIG_EXT4_FS"] = "y"
	some, err := initramfs.Modules(&k2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(some, "ext4") || slices.Contains(some, "crc32c_generic") || len(some) != len(all)-2 {
		t.Errorf("Modules with EXT4_FS=y = %v", some)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestModulesFollowNeeds(t *testing.T) {
	k := kerneltest.Debian(t, "amd64")
	var needs []kernel.ConfigNeed
	for _, n := range kernel.GuestConfigs() {
		if n.Option != "VIRTIO_FS" && n.Option != "FUSE_FS" {
			needs = append(needs, n)
		}
	}
	mods, err := initramfs.Modules(k, needs)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(mods, "virtiofs") || !slices.Contains(mods, "9p") || !slices.Contains(mods, "virtio_pci") {
		t.Errorf("Modules without virtio-fs = %v", mods)
	}
	k2 := *k
	k2.Config = map[string]string{"CONFIG_VIRTIO_BLK": "m"}
	if _, err := initramfs.Modules(&k2, nil); err == nil || !strings.Contains(err.Error(), "CONFIG_EXT4_FS") {
		t.Errorf("Modules for a kernel without ext4 = %v; want an error naming CONFIG_EXT4_FS", err)
	}
}

// TestBuildForBerthKernel: for Berth's own kernel (make kernel-berth:
// everything built in, no lib/modules) the initramfs carries no modules
// and no load orders — it is the very archive a build without a kernel
// makes — and so does a kernel that ships a modules directory but builds
// every guest option in.
func TestBuildForBerthKernel(t *testing.T) {
	cfg := kerneltest.BerthConfig(t)
	dir := t.TempDir()
	kerneltest.FakeBerthTree(t, dir, "6.1.192-berth", cfg)
	k, err := kernel.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mods, err := initramfs.Modules(k, nil); err != nil || len(mods) != 0 {
		t.Fatalf("Modules(Berth kernel) = %v, %v; want none", mods, err)
	}
	init, cache := fakeInit(t), t.TempDir()
	p, err := initramfs.Build(context.Background(), initramfs.Spec{Init: init, Kernel: k, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	names := list(t, p, false)
	if !slices.Contains(names, "init") {
		t.Errorf("archive lists %v; want init", names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "lib/modules/") {
			t.Errorf("archive for the Berth kernel holds %s", n)
		}
	}
	bare, err := initramfs.Build(context.Background(), initramfs.Spec{Init: init, CacheDir: cache})
	if err != nil || bare != p {
		t.Errorf("Build without a kernel = %s, %v; want the Berth kernel's archive %s", bare, err, p)
	}

	// A modules directory that the config leaves unused changes nothing.
	mdir := filepath.Join(dir, "lib", "modules", "6.1.192-berth")
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mdir, "modules.dep"), []byte("kernel/fs/ext4/ext4.ko:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k2, err := kernel.Open(dir)
	if err != nil || k2.ModulesDir != mdir {
		t.Fatalf("Open with lib/modules = %v (modules %q), %v", k2, k2.ModulesDir, err)
	}
	if mods, err := initramfs.Modules(k2, nil); err != nil || len(mods) != 0 {
		t.Errorf("Modules(all built in, with lib/modules) = %v, %v; want none", mods, err)
	}
}
