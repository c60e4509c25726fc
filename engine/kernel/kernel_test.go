package kernel_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/internal/kerneltest"
	"github.com/berthvm/berth/internal/testenv"
)

func TestOpenDebianTrees(t *testing.T) {
	for _, tc := range []struct {
		arch   string
		format kernel.Format
	}{{"amd64", kernel.FormatBzImage}, {"arm64", kernel.FormatImage}} {
		t.Run(tc.arch, func(t *testing.T) {
			k := kerneltest.Debian(t, tc.arch)
			if k.Arch != tc.arch || k.Format != tc.format {
				t.Errorf("Open = %s; want arch %s format %s", k, tc.arch, tc.format)
			}
			if !strings.HasSuffix(k.Version, "-"+tc.arch) {
				t.Errorf("version %q", k.Version)
			}
			if k.ConfigPath == "" || k.ModulesDir == "" {
				t.Errorf("config %q modules %q", k.ConfigPath, k.ModulesDir)
			}
			if got := k.Support("EXT4_FS"); got != kernel.Module {
				t.Errorf("EXT4_FS: %v, want module", got)
			}
			if err := k.Check(kernel.GuestConfigs()...); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestCheckNamesMissingConfig(t *testing.T) {
	k := &kernel.Kernel{Path: "/k", Version: "6.1", Arch: "arm64", Format: kernel.FormatImage,
		Config: map[string]string{"CONFIG_VIRTIO_BLK": "y", "CONFIG_9P_FS": "m"}}
	err := k.Check(kernel.ConfigNeed{Option: "VIRTIO_BLK", For: "disks"}, kernel.ConfigNeed{Option: "NET_9P_VIRTIO", For: "sharing"}, kernel.ConfigNeed{Option: "9P_FS", For: "sharing"})
	if err == nil {
		t.Fatal("Check passed a kernel without NET_9P_VIRTIO")
	}
	for _, want := range []string{"CONFIG_NET_9P_VIRTIO (needed for sharing)", "CONFIG_9P_FS is a module but the kernel comes without lib/modules"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "VIRTIO_BLK") {
		t.Errorf("error %q names a built-in option", err)
	}
}

func TestExtractVmlinux(t *testing.T) {
	k := kerneltest.Debian(t, "amd64")
	// Cross-check with xz(1), which implements the BCJ filter
	// independently; CI installs it.
	xzPath := testenv.RequireCommand(t, "xz", "xz-utils")
	bz, err := os.ReadFile(k.Path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	n, err := kernel.ExtractVmlinux(&out, bytes.NewReader(bz), int64(len(bz)))
	if err != nil {
		t.Fatal(err)
	}
	vmlinux := out.Bytes()
	if n != int64(len(vmlinux)) || !bytes.HasPrefix(vmlinux, []byte("\x7fELF")) {
		t.Fatalf("ExtractVmlinux wrote %d bytes, says %d", len(vmlinux), n)
	}
	cmd := exec.Command(xzPath, "-dc", "--single-stream")
	cmd.Stdin = bytes.NewReader(payloadOf(t, bz))
	want, _ := cmd.Output() // xz complains about the trailing size
	if len(want) != len(vmlinux) || !bytes.Equal(vmlinux, want) {
		t.Fatalf("ExtractVmlinux differs from xz -d (%d vs %d bytes)", len(vmlinux), len(want))
	}
	if _, err := kernel.ExtractVmlinux(io.Discard, bytes.NewReader(bz[:len(bz)/2]), int64(len(bz)/2)); err == nil {
		t.Error("ExtractVmlinux of a truncated bzImage succeeded")
	}
	dir := t.TempDir()
	p, err := k.BootImage(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	vk, err := kernel.Open(p)
	if err != nil || vk.Format != kernel.FormatELF || vk.Arch != "amd64" {
		t.Fatalf("Open(boot image) = %v, %v", vk, err)
	}
	// Cached: a second call returns the same file without rewriting it.
	st1, _ := os.Stat(p)
	p2, err := k.BootImage(context.Background(), dir)
	st2, _ := os.Stat(p2)
	if err != nil || p2 != p || !st1.ModTime().Equal(st2.ModTime()) {
		t.Fatalf("second BootImage = %s, %v", p2, err)
	}
}

func payloadOf(t *testing.T, bz []byte) []byte {
	t.Helper()
	setup := int(bz[0x1f1])
	off := (setup+1)*512 + int(uint32(bz[0x248])|uint32(bz[0x249])<<8|uint32(bz[0x24a])<<16|uint32(bz[0x24b])<<24)
	n := int(uint32(bz[0x24c]) | uint32(bz[0x24d])<<8 | uint32(bz[0x24e])<<16 | uint32(bz[0x24f])<<24)
	return bz[off : off+n-4]
}

func TestBootImageGzipImage(t *testing.T) {
	k := kerneltest.Debian(t, "arm64")
	if p, err := k.BootImage(context.Background(), t.TempDir()); err != nil || p != k.Path {
		t.Fatalf("BootImage of an uncompressed Image = %s, %v; want the image itself", p, err)
	}
	img, err := os.ReadFile(k.Path)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(img)
	zw.Close()
	gzPath := filepath.Join(t.TempDir(), "Image.gz")
	if err := os.WriteFile(gzPath, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	gk, err := kernel.Open(gzPath)
	if err != nil || gk.Format != kernel.FormatGzipImage || gk.Arch != "arm64" {
		t.Fatalf("Open(Image.gz) = %v, %v", gk, err)
	}
	p, err := gk.BootImage(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, img) {
		t.Fatal("gunzipped Image differs from the original")
	}
}

// TestBootImageZboot wraps Debian's arm64 Image the way CONFIG_EFI_ZBOOT
// does (header, then the compressed Image) and checks it is unwrapped.
func TestBootImageZboot(t *testing.T) {
	k := kerneltest.Debian(t, "arm64")
	img, err := os.ReadFile(k.Path)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(img)
	zw.Close()
	hdr := make([]byte, 0x1000)
	copy(hdr, "MZ\x00\x00zimg")
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(hdr)))
	binary.LittleEndian.PutUint32(hdr[12:], uint32(gz.Len()))
	copy(hdr[24:], "gzip\x00")
	binary.LittleEndian.PutUint32(hdr[0x38:], 0x818223cd) // LINUX_PE_MAGIC
	p := filepath.Join(t.TempDir(), "vmlinuz.efi")
	if err := os.WriteFile(p, append(hdr, gz.Bytes()...), 0o644); err != nil {
		t.Fatal(err)
	}
	zk, err := kernel.Open(p)
	if err != nil || zk.Format != kernel.FormatZboot || zk.Arch != "arm64" {
		t.Fatalf("Open(zboot) = %v, %v", zk, err)
	}
	out, err := zk.BootImage(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, img) {
		t.Fatal("unwrapped zboot Image differs from the original")
	}
}

func TestOpenRejectsGarbage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(p, bytes.Repeat([]byte("x"), 4096), 0o644)
	if _, err := kernel.Open(p); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Open(garbage) = %v, want invalid argument", err)
	}
}

func TestLoadOrder(t *testing.T) {
	k := kerneltest.Debian(t, "amd64")
	mods, err := k.ReadModules()
	if err != nil {
		t.Fatal(err)
	}
	order, err := mods.LoadOrder("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(order))
	for i, p := range order {
		names[i] = kernel.ModuleName(p)
	}
	pos := map[string]int{}
	for i, n := range names {
		if _, dup := pos[n]; dup {
			t.Errorf("%s twice in %v", n, names)
		}
		pos[n] = i
	}
	for _, before := range [][2]string{{"virtio", "virtio_ring"}, {"virtio_ring", "virtio_pci"}, {"virtio_pci_modern_dev", "virtio_pci"}, {"crc32c_generic", "ext4"}, {"jbd2", "ext4"}, {"mbcache", "ext4"}, {"crc16", "ext4"}, {"virtio", "virtio_blk"}} {
		a, aok := pos[before[0]]
		b, bok := pos[before[1]]
		if !aok || !bok {
			// virtio and virtio_ring depend on each other's load order
			// only through modules.dep; both must be present.
			t.Errorf("%s or %s missing from %v", before[0], before[1], names)
			continue
		}
		if before[0] == "virtio" && before[1] == "virtio_ring" {
			continue // whichever modules.dep says
		}
		if a > b {
			t.Errorf("%s loads after %s: %v", before[0], before[1], names)
		}
	}
	if _, err := mods.LoadOrder("no_such_module"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("LoadOrder(no_such_module) = %v", err)
	}
}

// TestWriteModulesDepMatchesDepmod checks the pure-Go modules.dep (for
// macOS, which has no depmod) against depmod's for the same tree.
func TestWriteModulesDepMatchesDepmod(t *testing.T) {
	k := kerneltest.Debian(t, "arm64")
	dir := t.TempDir()
	// Copy the tree as links to the same .ko files, so the test does not
	// rewrite the cache's modules.dep.
	err := filepath.WalkDir(filepath.Join(k.ModulesDir, "kernel"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(k.ModulesDir, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		return os.Symlink(p, filepath.Join(dir, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := kernel.WriteModulesDep(dir); err != nil {
		t.Fatal(err)
	}
	got := readDep(t, filepath.Join(dir, "modules.dep"))
	want := readDep(t, filepath.Join(k.ModulesDir, "modules.dep"))
	if len(got) != len(want) {
		t.Errorf("%d modules, depmod has %d", len(got), len(want))
	}
	bad := 0
	for m, w := range want {
		if g := got[m]; !reflect.DeepEqual(g, w) && bad < 5 {
			bad++
			t.Errorf("%s: deps %v, depmod %v", m, g, w)
		}
	}
	// The order matters too: loading from last to first must work.
	wantExt4 := "kernel/fs/ext4/ext4.ko"
	mods, err := kernel.ReadModulesDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mods.LoadOrder(wantExt4); err != nil {
		t.Error(err)
	}
}

// readDep maps each module to the sorted set of its dependencies.
func readDep(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		mod, deps, _ := strings.Cut(l, ":")
		f := strings.Fields(deps)
		sortStrings(f)
		m[mod] = f
	}
	return m
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// debianDeb returns the real Debian arm64 kernel package, downloaded with
// apt-get into the cache once.
func debianDeb(t *testing.T) string {
	t.Helper()
	k := kerneltest.Debian(t, "arm64")
	dir := filepath.Join(filepath.Dir(kerneltest.CacheDir(t)), "deb")
	pkg := "linux-image-" + k.Version
	if m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*_arm64.deb")); len(m) > 0 {
		return m[0]
	}
	apt := testenv.RequireCommand(t, "apt-get", "apt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(apt, "download", "-q", pkg+":arm64")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		testenv.Unavailable(t, "apt-get download %s:arm64: %v\n%s", pkg, err, out)
	}
	m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*_arm64.deb"))
	if len(m) == 0 {
		t.Fatalf("apt-get download left no %s .deb in %s", pkg, dir)
	}
	return m[0]
}

// TestFetchDebianPackage downloads the real Debian arm64 kernel package
// from a loopback server, the way macOS fetches its default kernel, and
// checks the unpacked tree against the one dpkg -x and depmod made.
func TestFetchDebianPackage(t *testing.T) {
	deb := debianDeb(t)
	want := kerneltest.Debian(t, "arm64")
	body, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "k.deb", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	sum := sha256Hex(body)

	dest := filepath.Join(t.TempDir(), "default-arm64")
	var calls, last int64
	k, err := kernel.Fetch(context.Background(), kernel.Source{URL: srv.URL + "/k.deb", SHA256: sum}, dest, func(done, total int64) {
		calls++
		last = done
		if total != int64(len(body)) {
			t.Errorf("progress total %d, want %d", total, len(body))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last != int64(len(body)) {
		t.Errorf("progress: %d calls, last %d of %d", calls, last, len(body))
	}
	if k.Arch != "arm64" || k.Format != kernel.FormatImage || k.Version != want.Version || k.ModulesDir == "" {
		t.Fatalf("fetched kernel %s (modules %q)", k, k.ModulesDir)
	}
	a, _ := os.ReadFile(k.Path)
	b, _ := os.ReadFile(want.Path)
	if !bytes.Equal(a, b) {
		t.Error("unpacked vmlinuz differs from dpkg -x's")
	}
	got := readDep(t, filepath.Join(k.ModulesDir, "modules.dep"))
	wantDep := readDep(t, filepath.Join(want.ModulesDir, "modules.dep"))
	if !reflect.DeepEqual(got, wantDep) {
		t.Errorf("generated modules.dep differs from depmod's (%d vs %d modules)", len(got), len(wantDep))
	}
	if err := k.Check(kernel.GuestConfigs()...); err != nil {
		t.Error(err)
	}

	// A kernel.json naming this package resolves to the fetched tree
	// (CACHE/sha256-PREFIX) without downloading it again.
	home, cache := t.TempDir(), t.TempDir()
	if err := os.Symlink(dest, filepath.Join(cache, "sha256-"+sum[:16])); err != nil {
		t.Fatal(err)
	}
	if err := kernel.WriteChoice(home, kernel.Choice{Source: kernel.Source{URL: srv.URL + "/k.deb", SHA256: sum}}); err != nil {
		t.Fatal(err)
	}
	rk, err := kernel.Resolve(context.Background(), kernel.Options{Home: home, CacheDir: cache, Arch: "arm64", GOOS: "darwin", Getenv: func(string) string { return "" }})
	if err != nil || rk.Version != want.Version || rk.ModulesDir == "" {
		t.Errorf("Resolve with kernel.json url = %v, %v", rk, err)
	}

	// A wrong checksum is refused and leaves nothing behind.
	bad := filepath.Join(t.TempDir(), "bad")
	_, err = kernel.Fetch(context.Background(), kernel.Source{URL: srv.URL + "/k.deb", SHA256: strings.Repeat("0", 64)}, bad, nil)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("Fetch with a wrong sha256 = %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(bad)); len(ents) != 0 {
		t.Errorf("failed fetch left %v", ents)
	}
}

func sha256Hex(b []byte) string {
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func TestResolveOrder(t *testing.T) {
	amd := kerneltest.Debian(t, "amd64")
	cache := filepath.Dir(filepath.Dir(filepath.Dir(amd.Path))) // CACHE/amd64/boot/vmlinuz → CACHE
	home := t.TempDir()
	env := map[string]string{}
	opts := kernel.Options{Home: home, CacheDir: cache, Arch: "amd64", GOOS: "linux", Getenv: func(k string) string { return env[k] }}
	ctx := context.Background()

	k, err := kernel.Resolve(ctx, opts)
	if err != nil || k.Path != amd.Path || k.Origin != kernel.OriginCache {
		t.Fatalf("Resolve from the cache = %v (%q), %v; want %s", k, k.Origin, err, amd.Path)
	}
	// kernel.json beats the cache.
	other := filepath.Join(t.TempDir(), "vmlinuz")
	b, _ := os.ReadFile(amd.Path)
	os.WriteFile(other, b, 0o644)
	if err := kernel.WriteChoice(home, kernel.Choice{Path: other}); err != nil {
		t.Fatal(err)
	}
	if k, err = kernel.Resolve(ctx, opts); err != nil || k.Path != other || k.Origin != kernel.OriginChoice {
		t.Fatalf("Resolve with kernel.json = %v, %v; want %s", k, err, other)
	}
	// $BERTH_KERNEL beats kernel.json.
	env[kernel.EnvKernel] = filepath.Dir(filepath.Dir(amd.Path))
	if k, err = kernel.Resolve(ctx, opts); err != nil || k.Path != amd.Path || k.ModulesDir == "" || k.Origin != kernel.OriginEnv {
		t.Fatalf("Resolve with $BERTH_KERNEL = %v, %v", k, err)
	}
	// A kernel of the wrong architecture is refused.
	opts.Arch = "arm64"
	if _, err = kernel.Resolve(ctx, opts); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Resolve(arm64) with an amd64 $BERTH_KERNEL = %v", err)
	}
	if src, err := kernel.DefaultSource("arm64"); err != nil || !strings.HasSuffix(src.URL, "_arm64.deb") || len(src.SHA256) != 64 {
		t.Fatalf("DefaultSource(arm64) = %+v, %v", src, err)
	}
}

// TestResolveOriginOfDefault: the pinned default, fetched into the kernel
// cache (CACHE/default-ARCH), is reported as the pinned default, not as
// the kernel cache; offline and not fetched yet, the error says so too.
func TestResolveOriginOfDefault(t *testing.T) {
	amd := kerneltest.Debian(t, "amd64")
	cache := t.TempDir()
	opts := kernel.Options{CacheDir: cache, Arch: "amd64", GOOS: "darwin", Offline: true, Getenv: func(string) string { return "" }}
	_, err := kernel.Resolve(context.Background(), opts)
	var nf *kernel.NotFetchedError
	if !errors.Is(err, kernel.ErrNotFetched) || !errors.As(err, &nf) || nf.Origin != kernel.OriginDefault || nf.URL == "" {
		t.Fatalf("Resolve offline without the default = %v", err)
	}
	if err := os.Symlink(filepath.Dir(filepath.Dir(amd.Path)), filepath.Join(cache, "default-amd64")); err != nil {
		t.Fatal(err)
	}
	k, err := kernel.Resolve(context.Background(), opts)
	if err != nil || k.Origin != kernel.OriginDefault {
		t.Fatalf("Resolve with the default fetched = %v (origin %q), %v", k, k.Origin, err)
	}
}

// TestExtractVmlinuxGzip: a bzImage with a gzip payload (CONFIG_KERNEL_GZIP,
// as make kernel-berth builds it: no size appended, gzip's trailer ends
// the payload) extracts to its ELF.
func TestExtractVmlinuxGzip(t *testing.T) {
	elf := append([]byte("\x7fELF"), bytes.Repeat([]byte("vmlinux "), 5000)...)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(elf)
	zw.Close()
	const setupSects, off = 1, 0x100
	bz := make([]byte, (setupSects+1)*512+off)
	copy(bz[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(bz[0x206:], 0x020f)
	bz[0x1f1] = setupSects
	binary.LittleEndian.PutUint32(bz[0x248:], off)
	binary.LittleEndian.PutUint32(bz[0x24c:], uint32(gz.Len()))
	bz = append(bz, gz.Bytes()...)
	bz = append(bz, make([]byte, 64)...) // what follows the payload in a real image
	var out bytes.Buffer
	n, err := kernel.ExtractVmlinux(&out, bytes.NewReader(bz), int64(len(bz)))
	if err != nil || n != int64(len(elf)) || !bytes.Equal(out.Bytes(), elf) {
		t.Fatalf("ExtractVmlinux(gzip payload) = %d bytes, %v; want the %d-byte ELF", n, err, len(elf))
	}
}
