//go:build linux

package qemu_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"

	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/initramfs"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/qemu"
	"github.com/berthvm/berth/internal/kerneltest"
)

// testPrefix starts every test VM's ID, so TestMain can find leftovers.
const testPrefix = "qemutest-"

var workDir string // per test run, removed by TestMain

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "berth-qemu-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	workDir = d
	code := m.Run()
	if left := leftoverQEMU(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: QEMU processes left after the tests: %v\n", left)
		code = 1
	}
	os.RemoveAll(d)
	os.Exit(code)
}

// leftoverQEMU lists QEMU processes this test run started (their command
// lines name files in its workDir; other runs of these tests on the same
// machine use other directories) that are still running.
func leftoverQEMU() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmd := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		if strings.Contains(cmd, "qemu-system") && strings.Contains(cmd, "berth-"+testPrefix) && strings.Contains(cmd, workDir) {
			if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
				continue // a zombie its parent has not reaped yet
			}
			out = append(out, e.Name()+": "+cmd)
		}
	}
	return out
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// goBuild builds a static linux/arch binary of pkg once per test run.
func goBuild(t testing.TB, pkg, arch string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	key := pkg + "/" + arch
	if p, ok := built[key]; ok {
		return p
	}
	out := filepath.Join(workDir, filepath.Base(pkg)+"-"+arch)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s for %s: %v\n%s", pkg, arch, err, b)
	}
	built[key] = out
	return out
}

// guest is what a test boots: a kernel, an initramfs and a root disk.
type guest struct {
	arch      string
	kernel    string
	initramfs string
	root      string
}

// newGuest prepares a boot of init (a package path) for arch, with a root
// disk holding the files in rootFiles.
func newGuest(t testing.TB, arch, initPkg string, rootFiles map[string]string) guest {
	t.Helper()
	testenv.RequireCommand(t, map[string]string{"amd64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}[arch], map[string]string{"amd64": "qemu-system-x86", "arm64": "qemu-system-arm"}[arch])
	return newGuestOf(t, kerneltest.Debian(t, arch), initPkg, rootFiles)
}

// newGuestOf is newGuest with the kernel k (its arch) instead of Debian's.
func newGuestOf(t testing.TB, k *kernel.Kernel, initPkg string, rootFiles map[string]string) guest {
	t.Helper()
	arch := k.Arch
	testenv.RequireCommand(t, map[string]string{"amd64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}[arch], map[string]string{"amd64": "qemu-system-x86", "arm64": "qemu-system-arm"}[arch])
	ctx := context.Background()
	cache := filepath.Join(kerneltest.CacheDir(t), "test-cache")
	img, err := k.BootImage(ctx, cache)
	if err != nil {
		t.Fatal(err)
	}
	init := goBuild(t, initPkg, arch)
	ird, err := initramfs.Build(ctx, initramfs.Spec{Init: init, Kernel: k, Needs: qemu.GuestConfigs(), CacheDir: filepath.Join(workDir, "initramfs")})
	if err != nil {
		t.Fatal(err)
	}
	return guest{arch: arch, kernel: img, initramfs: ird, root: makeRootfs(t, rootFiles)}
}

// makeRootfs makes an ext4 root disk from files (path → contents) with
// mkfs.ext4 -d: this package's tests boot VMs without images
// (engine/rootfs builds container root disks).
func makeRootfs(t testing.TB, files map[string]string) string {
	t.Helper()
	mkfs := testenv.RequireCommand(t, "mkfs.ext4", "e2fsprogs")
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "rootfs.ext4")
	if b, err := exec.Command(mkfs, "-q", "-F", "-d", dir, img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, b)
	}
	return img
}

// config returns a vmm.Config for g with a fresh state dir and console
// log.
func (g guest) config(t testing.TB, name string) vmm.Config {
	state := t.TempDir()
	return vmm.Config{
		ID:         testPrefix + name,
		StateDir:   state,
		Arch:       g.arch,
		CPUs:       1,
		MemoryMiB:  512,
		Kernel:     g.kernel,
		Initramfs:  g.initramfs,
		Root:       vmm.Disk{Path: g.root},
		ConsoleLog: filepath.Join(state, "console.log"),
	}
}

// bootTimeout bounds a boot under TCG on a slow 2-core machine.
const bootTimeout = 90 * time.Second

// command sends one testinit command on port 1024 and returns the reply.
func command(ctx context.Context, d transport.Dialer, cmd string, input string) (string, error) {
	c, err := d.DialPort(ctx, transport.AgentPort)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, cmd+"\n"+input); err != nil {
		return "", err
	}
	transport.CloseWrite(c)
	b, err := io.ReadAll(c)
	return string(b), err
}

// poweroff is a vmm.ShutdownFunc for testinit.
func poweroff(ctx context.Context, d transport.Dialer) error {
	c, err := d.DialPort(ctx, transport.AgentPort)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = io.WriteString(c, "poweroff\n")
	return err
}

func consoleLog(t *testing.T, cfg vmm.Config) string {
	b, _ := os.ReadFile(cfg.ConsoleLog)
	return string(b)
}
