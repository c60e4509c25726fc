package kernel_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/internal/kerneltest"
)

// TestBerthConfigBuildsInWhatTheGuestUses: the committed fragment of
// Berth's own kernel sets every option the guest uses (kernel.GuestConfigs)
// to y and turns modules off, so the kernel it builds needs no initramfs
// modules; it sets nothing to m.
func TestBerthConfigBuildsInWhatTheGuestUses(t *testing.T) {
	cfg := kerneltest.BerthConfig(t)
	for _, n := range kernel.GuestConfigs() {
		if v := cfg["CONFIG_"+n.Option]; v != "y" {
			t.Errorf("berth-kernel.config: CONFIG_%s=%q, want y (needed for %s)", n.Option, v, n.For)
		}
	}
	for _, o := range []string{"VIRTIO_PCI", "VIRTIO_MMIO", "CRYPTO_CRC32C", "HW_RANDOM_VIRTIO", "VMGENID", "SERIAL_8250_CONSOLE", "PVH", "CGROUPS", "SECCOMP_FILTER", "USER_NS", "NF_TABLES"} {
		if cfg["CONFIG_"+o] != "y" {
			t.Errorf("berth-kernel.config: CONFIG_%s=%q, want y", o, cfg["CONFIG_"+o])
		}
	}
	if cfg["CONFIG_MODULES"] != "n" {
		t.Errorf("berth-kernel.config: CONFIG_MODULES=%q, want it not set", cfg["CONFIG_MODULES"])
	}
	for k, v := range cfg {
		if v == "m" {
			t.Errorf("berth-kernel.config: %s=m; Berth's kernel has no modules", k)
		}
	}
}

// TestResolveBerthKernel: with Berth's own kernel in the cache
// (CACHE/berth-amd64) and Debian's (CACHE/amd64), Resolve keeps
// Debian's; $BERTH_KERNEL or a kernel.json choice naming the Berth
// directory selects it: no modules directory, every guest option built
// in, so Check passes.
func TestResolveBerthKernel(t *testing.T) {
	cache := t.TempDir()
	const debian, release = "6.1.0-57-amd64", "6.1.192-berth"
	deb := kerneltest.FakeBerthTree(t, filepath.Join(cache, "amd64"), debian, map[string]string{"CONFIG_MODULES": "y"})
	mods := filepath.Join(cache, "amd64", "lib", "modules", debian)
	if err := os.MkdirAll(mods, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mods, "modules.dep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := kernel.BerthDir(cache, "amd64")
	img := kerneltest.FakeBerthTree(t, dir, release, kerneltest.BerthConfig(t))

	env := map[string]string{}
	home := t.TempDir()
	opts := kernel.Options{Home: home, CacheDir: cache, Arch: "amd64", GOOS: "linux", Getenv: func(k string) string { return env[k] }}
	ctx := context.Background()
	k, err := kernel.Resolve(ctx, opts)
	if err != nil || k.Path != deb || k.Origin != kernel.OriginCache {
		t.Fatalf("Resolve with both kernels in the cache = %v, %v; want Debian's %s", k, err, deb)
	}

	check := func(k *kernel.Kernel, origin kernel.Origin) {
		t.Helper()
		if k.Path != img || k.Version != release || k.Format != kernel.FormatBzImage || k.Origin != origin {
			t.Errorf("Berth kernel = %v (version %q, origin %q); want %s from %s", k, k.Version, k.Origin, img, origin)
		}
		if k.ModulesDir != "" {
			t.Errorf("Berth kernel has a modules directory %s", k.ModulesDir)
		}
		for _, n := range kernel.GuestConfigs() {
			if s := k.Support(n.Option); s != kernel.Builtin {
				t.Errorf("Berth kernel: %s is %v, want built in", n.Option, s)
			}
		}
		if err := k.Check(kernel.GuestConfigs()...); err != nil {
			t.Errorf("Check: %v", err)
		}
	}
	env[kernel.EnvKernel] = dir
	k, err = kernel.Resolve(ctx, opts)
	if err != nil {
		t.Fatalf("Resolve with $BERTH_KERNEL=%s: %v", dir, err)
	}
	check(k, kernel.OriginEnv)

	delete(env, kernel.EnvKernel)
	if err := kernel.WriteChoice(home, kernel.Choice{Path: dir}); err != nil {
		t.Fatal(err)
	}
	k, err = kernel.Resolve(ctx, opts)
	if err != nil {
		t.Fatalf("Resolve with kernel.json naming %s: %v", dir, err)
	}
	check(k, kernel.OriginChoice)
}
