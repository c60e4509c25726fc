//go:build linux

package builder_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/builder"
	"github.com/berthvm/berth/engine/initramfs"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/qemu"
	"github.com/berthvm/berth/internal/kerneltest"
	"github.com/berthvm/berth/internal/testenv"
)

// binDir is where make builder-bins leaves the programs for arch.
func binDir(t *testing.T, arch string) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", "builder", "bin", arch))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range builder.Programs {
		if _, err := os.Stat(filepath.Join(d, p)); err != nil {
			testenv.Unavailable(t, "%s: run make builder-bins (BuildKit and runc for linux/%s)", err, arch)
		}
	}
	return d
}

// TestRootfsMissingProgram: a bin dir without the programs is a clear
// error naming the program and make builder-bins.
func TestRootfsMissingProgram(t *testing.T) {
	err := builder.WriteRootfs(context.Background(), filepath.Join(t.TempDir(), "r.ext4"), builder.RootfsSpec{BinDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "buildkitd is missing") || !strings.Contains(err.Error(), "make builder-bins") {
		t.Fatalf("WriteRootfs with an empty bin dir: %v; want buildkitd missing, make builder-bins", err)
	}
}

// TestBuilderGuest writes the builder's root filesystem from the real
// programs with Berth's ext4 writer, has e2fsck check it, boots it in a
// QEMU micro-VM with Debian's kernel and the real guestinit, and runs
// buildkitd --version, runc --version and runc features through the agent.
func TestBuilderGuest(t *testing.T) {
	arch := runtime.GOARCH
	bins := binDir(t, arch)
	e2fsck := testenv.RequireCommand(t, "e2fsck", "e2fsprogs")
	testenv.RequireCommand(t, map[string]string{"amd64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}[arch],
		map[string]string{"amd64": "qemu-system-x86", "arm64": "qemu-system-arm"}[arch])
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	work := t.TempDir()

	root := filepath.Join(work, "builder.ext4")
	start := time.Now()
	if err := builder.WriteRootfs(ctx, root, builder.RootfsSpec{BinDir: bins}); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(root)
	t.Logf("rootfs written in %v: %d MiB", time.Since(start).Round(time.Millisecond), st.Size()>>20)
	if b, err := exec.CommandContext(ctx, e2fsck, "-fn", root).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", root, err, b)
	}

	k := kerneltest.Debian(t, arch)
	img, err := k.BootImage(ctx, filepath.Join(kerneltest.CacheDir(t), "test-cache"))
	if err != nil {
		t.Fatal(err)
	}
	init := filepath.Join(work, "guestinit")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", init, "github.com/berthvm/berth/guestinit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build guestinit: %v\n%s", err, b)
	}
	ird, err := initramfs.Build(ctx, initramfs.Spec{Init: init, Kernel: k, Needs: qemu.GuestConfigs(), CacheDir: filepath.Join(work, "initramfs")})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	cfg := vmm.Config{
		ID: "buildertest-" + arch, StateDir: state, Arch: arch, CPUs: 1, MemoryMiB: 512,
		Kernel: img, Initramfs: ird, Root: vmm.Disk{Path: root},
		ConsoleLog: filepath.Join(state, "console.log"),
		Ping: func(ctx context.Context, d transport.Dialer) error {
			c, err := agent.Dial(ctx, d)
			if err != nil {
				return err
			}
			return c.Close()
		},
	}
	m, err := qemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill(context.Background()) })
	if err := m.Start(ctx); err != nil {
		b, _ := os.ReadFile(cfg.ConsoleLog)
		t.Fatalf("boot: %v\nconsole:\n%s", err, b)
	}
	c, err := agent.Dial(ctx, m.Dialer())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	run := func(id string, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		st, err := c.Run(ctx, &agentpb.CreateProcessRequest{Id: id, Args: args, Env: []string{"PATH=/usr/bin"}},
			agent.Stdio{Stdout: &out, Stderr: &errOut})
		if err != nil {
			t.Fatalf("%v: %v (stderr %q)", args, err, errOut.String())
		}
		if st.Code != 0 {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, st.Code, out.String(), errOut.String())
		}
		return out.String()
	}
	if out := run("buildkitd", "/usr/bin/buildkitd", "--version"); !strings.HasPrefix(out, "buildkitd github.com/moby/buildkit v") {
		t.Errorf("buildkitd --version in the guest = %q", out)
	}
	if out := run("buildctl", "/usr/bin/buildctl", "--version"); !strings.HasPrefix(out, "buildctl github.com/moby/buildkit v") {
		t.Errorf("buildctl --version in the guest = %q", out)
	}
	out := run("runc", "/usr/bin/runc", "--version")
	if !strings.HasPrefix(out, "runc version ") || !strings.Contains(out, "libseccomp: ") {
		t.Errorf("runc --version in the guest = %q; want a version and libseccomp", out)
	}
	// runc features: this runc was built with seccomp and cgroup v2.
	feat := run("runc-features", "/usr/bin/runc", "features")
	for _, want := range []string{`"seccomp": {`, `"enabled": true`, `"v2": true`} {
		if !strings.Contains(feat, want) {
			t.Errorf("runc features in the guest lacks %s:\n%s", want, feat)
		}
	}
	// overlayfs, BuildKit's snapshotter, in the guest kernel: a read-only
	// overlay of /etc and /usr/bin, and buildctl run from it. The agent
	// resolves only the target inside the rootfs; the kernel reads the
	// lowerdir paths in guestinit's view, where the root disk is mounted
	// at /run/berth/rootfs.
	const disk = "/run/berth/rootfs"
	if err := c.Mount(ctx, &agentpb.MountRequest{Source: "overlay", Target: "/run/ovl", Fstype: "overlay",
		Options: []string{"lowerdir=" + disk + "/etc:" + disk + "/usr/bin"}, MkdirTarget: true}); err != nil {
		t.Fatalf("overlay mount in the builder guest: %v", err)
	}
	if out := run("overlay", "/run/ovl/buildctl", "--version"); !strings.HasPrefix(out, "buildctl ") {
		t.Errorf("buildctl from the overlay = %q", out)
	}
	t.Logf("in the guest: %s", strings.ReplaceAll(out, "\n", "; "))

	// buildkitd as a daemon with the config the rootfs carries: its OCI
	// worker (runc, overlayfs snapshotter on the ext4 root) comes up and
	// buildctl reaches it.
	const sock = "unix:///run/buildkit/buildkitd.sock"
	var dOut testenv.SyncBuffer
	daemon := &agentpb.CreateProcessRequest{Id: "buildkitd", Args: []string{"/usr/bin/buildkitd", "--addr", sock},
		Env: []string{"PATH=/usr/bin"}}
	c.AssignPorts(daemon, agent.Stdio{Stdout: &dOut, Stderr: &dOut})
	if err := c.CreateProcess(ctx, daemon); err != nil {
		t.Fatal(err)
	}
	att, err := c.Attach(ctx, daemon, agent.Stdio{Stdout: &dOut, Stderr: &dOut})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	if _, err := c.StartProcess(ctx, daemon.Id); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	var workers string
	for i := 0; ; i++ {
		var o, e bytes.Buffer
		st, err := c.Run(ctx, &agentpb.CreateProcessRequest{Id: "workers-" + strconv.Itoa(i), Env: []string{"PATH=/usr/bin"},
			Args: []string{"/usr/bin/buildctl", "--addr", sock, "debug", "workers", "-v"}}, agent.Stdio{Stdout: &o, Stderr: &e})
		if err != nil {
			t.Fatal(err)
		}
		if st.Code == 0 && strings.Contains(o.String(), "Labels:") {
			workers = o.String()
			break
		}
		if time.Since(started) > time.Minute {
			t.Fatalf("buildctl debug workers after %v: exit %d, %q %q; buildkitd's output:\n%s", time.Since(started), st.Code, o.String(), e.String(), dOut.String())
		}
		time.Sleep(time.Second)
	}
	t.Logf("buildkitd's worker up after %v:\n%s", time.Since(started).Round(100*time.Millisecond), workers)
	labels := map[string]string{}
	for _, line := range strings.Split(workers, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			labels[strings.TrimSuffix(f[0], ":")] = f[1]
		}
	}
	for k, want := range map[string]string{"org.mobyproject.buildkit.worker.executor": "oci", "org.mobyproject.buildkit.worker.snapshotter": "overlayfs"} {
		if labels[k] != want {
			t.Errorf("buildctl debug workers: %s = %q, want %q:\n%s", k, labels[k], want, workers)
		}
	}
}
