//go:build linux

package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/builder"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/engine/network"
	"github.com/berthvm/berth/internal/kerneltest"
	"github.com/berthvm/berth/internal/testenv"
)

// TestMain builds guestinit for the host arch and points the launcher
// at it, as `make build` lays it out next to berth.
func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithGuestinit(m, "../../guestinit", launcher.GuestinitEnv))
}

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

// TestDisksPassFsck: the root filesystem and the cache disk the engine's
// ext4 writer makes pass e2fsck, and the 64 GiB cache disk is sparse.
func TestDisksPassFsck(t *testing.T) {
	bins := binDir(t, runtime.GOARCH)
	e2fsck := testenv.RequireCommand(t, "e2fsck", "e2fsprogs")
	ctx := context.Background()
	root, cache := filepath.Join(t.TempDir(), "builder.ext4"), filepath.Join(t.TempDir(), "cache.ext4")
	if err := builder.WriteRootfs(ctx, root, builder.RootfsSpec{BinDir: bins}); err != nil {
		t.Fatal(err)
	}
	if err := builder.WriteCacheDisk(ctx, cache, builder.DefaultCacheSize); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root, cache} {
		if b, err := exec.CommandContext(ctx, e2fsck, "-fn", p).CombinedOutput(); err != nil {
			t.Errorf("e2fsck -fn %s: %v\n%s", p, err, b)
		}
	}
	if st, err := os.Stat(cache); err != nil || st.Size() != builder.DefaultCacheSize {
		t.Errorf("cache disk: %v, %v; want %d bytes", st, err, int64(builder.DefaultCacheSize))
	}
	if du, err := exec.Command("du", "-k", cache).Output(); err != nil || len(du) == 0 || len(strings.Fields(string(du))[0]) > 5 {
		t.Errorf("du -k %s = %q, %v; want it sparse (under 100 MB)", cache, du, err)
	}
}

// TestBuilder is the image builder end to end on one builder VM, a
// failed start before it and one restart. A builder Manager on a fresh
// home (Debian's kernel, the real guestinit and programs, QEMU) with a
// buildkitd that fails reports the failure and its log. Started, it
// serves the host's buildctl through its socket: the OCI worker (runc,
// overlayfs) is up; a Dockerfile whose RUN step (a busybox COPYed into
// a scratch image: the guest has no network) writes a file builds, and
// the local export holds that file; a failing RUN reaches buildctl as
// the build's error. The builder stops after its idle timeout; the next
// build starts it again and finds the RUN step CACHED on the persistent
// cache disk; Manager.Build (POST /build's path: the context through the
// agent, the guest's buildctl) builds it again, CACHED, as a docker
// archive that loads into Berth's image store with its two layers and
// CMD, and leaves no directory on the cache disk; prune and stop work.
// The builder has its NIC on its own network: a Dockerfile FROM an image
// of a test registry builds with LocalBases' options, the base pulled
// into Berth's store by the engine and served to BuildKit by the store's
// registry on the builder network's gateway (the test registry sees no
// request from the build), and its RUN step resolves a name through the
// network's DNS server (the host's resolver is a test server on
// loopback).
func TestBuilder(t *testing.T) {
	arch := runtime.GOARCH
	realBins := binDir(t, arch)
	busybox := testenv.RequireTool(t, "/bin/busybox", "busybox-static")
	// The builder's programs as links to the real ones, so that the test
	// can put a buildkitd that fails in their place.
	bins := t.TempDir()
	link := func(name, to string) {
		os.Remove(filepath.Join(bins, name))
		if err := os.Symlink(to, filepath.Join(bins, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range builder.Programs {
		link(p, filepath.Join(realBins, p))
	}
	testenv.RequireCommand(t, map[string]string{"amd64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}[arch],
		map[string]string{"amd64": "qemu-system-x86", "arm64": "qemu-system-arm"}[arch])
	kerneltest.Debian(t, arch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	h := home.Home{Dir: t.TempDir()}
	// The kernel's boot image and the initramfs, made once for every run
	// of this test rather than in each fresh home (a minute under load).
	if err := os.Symlink(filepath.Join(kerneltest.CacheDir(t), "builder-test-cache"), h.Path("cache")); err != nil {
		t.Fatal(err)
	}
	var logBuf testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	defer func() { t.Logf("engine log:\n%s", logBuf.String()) }()
	vms := launcher.New(h, log, kernel.NewSetup(kernel.Options{Home: h.Dir, CacheDir: kerneltest.CacheDir(t)}))
	defer vms.Close()
	// The builder's network and Berth's image store: base images come
	// from the store (pulled there from a test registry behind a proxy
	// that counts what reaches it); the host's resolver is a test DNS
	// server on loopback that knows registry.berth.test.
	reg, realReg := startCountingRegistry(t)
	realReg.Push(t, "busybox", "1", testenv.BusyboxImage(t, nil))
	nets, err := network.New(network.Config{Dir: h.Path("networks"), Resolvers: []string{testDNS(t, "registry.berth.test", "192.0.2.10")}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer nets.Close()
	images, err := image.Open(h.Path("images"))
	if err != nil {
		t.Fatal(err)
	}
	defer images.Close()
	const idle = 4 * time.Second
	m, err := builder.New(builder.Config{
		Dir: h.Path("builder"), Socket: h.Path("run", "buildkitd.sock"), VMs: vms, BinDir: bins,
		IdleTimeout: idle, CPUs: 2, MemoryBytes: 1 << 30, Log: log, Networks: nets, Images: images,
	})
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- m.Serve(serveCtx) }()
	t.Cleanup(func() {
		stopServe()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		m.Close()
	})
	sock := h.Path("run", "buildkitd.sock")
	waitFor(t, "the builder socket", func() bool { _, err := os.Stat(sock); return err == nil })
	if st, _ := os.Stat(sock); st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", sock, st.Mode().Perm())
	}
	if st := m.Status(); st.Running {
		t.Fatalf("the builder runs before anyone asked: %+v", st)
	}

	buildctl := func(args ...string) (string, string, error) {
		var o, e bytes.Buffer
		cmd := exec.CommandContext(ctx, filepath.Join(realBins, "buildctl"), append([]string{"--addr", "unix://" + sock, "--timeout", "180"}, args...)...)
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		return o.String(), e.String(), err
	}
	// A buildkitd that cannot start (busybox: "applet not found"): the
	// connection that started the builder ends, the status names the
	// failure, buildkitd's output and its log; a client retrying at once
	// is refused without booting again.
	link("buildkitd", busybox)
	start := time.Now()
	if _, errOut, err := buildctl("debug", "workers"); err == nil {
		t.Fatalf("buildctl through a builder whose buildkitd fails: no error\n%s", errOut)
	}
	// Under load the boot can outlast buildctl's 20 s connect timeout:
	// the start then fails after the client gave up.
	waitFor(t, "the failed start", func() bool { return m.Status().LastError != "" })
	t.Logf("failed start reported after %v", time.Since(start).Round(100*time.Millisecond))
	st := m.Status()
	for _, want := range []string{"start builder: buildkitd exited with 127 before it served", "its log is " + st.Log, "applet not found"} {
		if !strings.Contains(st.LastError, want) {
			t.Errorf("status after a failed start: LastError %q lacks %q", st.LastError, want)
		}
	}
	if st.Running {
		t.Errorf("status after a failed start: running")
	}
	start = time.Now()
	if _, _, err := buildctl("debug", "workers"); err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("a client right after a failed start: %v after %v; want a quick refusal", err, time.Since(start))
	}
	link("buildkitd", filepath.Join(realBins, "buildkitd"))

	start = time.Now()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("start the builder: %v\nconsole:\n%s", err, readFile(filepath.Join(h.Path("builder"), "console.log")))
	}
	t.Logf("builder started in %v", time.Since(start).Round(100*time.Millisecond))
	workers, errOut, err := buildctl("debug", "workers", "-v")
	if err != nil {
		t.Fatalf("buildctl debug workers through %s: %v\n%s\nbuildkitd's log:\n%s", sock, err, errOut, readFile(m.Status().Log))
	}
	t.Logf("builder started and answered in %v", time.Since(start).Round(100*time.Millisecond))
	for _, want := range []string{"org.mobyproject.buildkit.worker.executor:", "oci", "org.mobyproject.buildkit.worker.snapshotter:", "overlayfs"} {
		if !strings.Contains(workers, want) {
			t.Errorf("buildctl debug workers -v lacks %q:\n%s", want, workers)
		}
	}
	if st := m.Status(); !st.Running || st.CacheBytes == 0 || st.LastError != "" {
		t.Errorf("status after a start: %+v; want running with a cache disk, no error", st)
	}

	// A Dockerfile whose RUN step writes a file, built from a host context.
	dir := t.TempDir()
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"busybox":         string(bb),
		"Dockerfile":      "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox mkdir /out && /bin/busybox echo built by RUN > /out/result && /bin/busybox cat /proc/self/cgroup >> /out/result\"]\nCMD [\"/bin/busybox\", \"cat\", \"/out/result\"]\n",
		"fail/Dockerfile": "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo failing on purpose >&2; exit 3\"]\n",
	}
	for name, content := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build := func(dockerfileDir, out string, global ...string) (string, error) {
		_, progress, err := buildctl(append(global, "build", "--frontend", "dockerfile.v0", "--progress", "plain",
			"--local", "context="+dir, "--local", "dockerfile="+dockerfileDir, "--output", "type=local,dest="+out)...)
		return progress, err
	}
	out1 := t.TempDir()
	start = time.Now()
	progress, err := build(dir, out1)
	if err != nil {
		t.Fatalf("buildctl build: %v\n%s\nbuildkitd's log:\n%s", err, progress, readFile(m.Status().Log))
	}
	t.Logf("first build in %v", time.Since(start).Round(100*time.Millisecond))
	result := readFile(filepath.Join(out1, "out", "result"))
	if !strings.HasPrefix(result, "built by RUN\n0::/") {
		t.Errorf("the RUN step's /out/result in the exported image = %q; want its line and its cgroup", result)
	}
	if _, err := os.Stat(filepath.Join(out1, "bin", "busybox")); err != nil {
		t.Errorf("the COPY step's file in the exported image: %v", err)
	}

	// A failing RUN: the build's error reaches the client.
	progress, err = build(filepath.Join(dir, "fail"), t.TempDir())
	if err == nil || !strings.Contains(progress, "failing on purpose") || !strings.Contains(progress, "exit code: 3") {
		t.Errorf("a build whose RUN exits 3: %v; want buildctl to fail with the step's output and exit code:\n%s", err, progress)
	}

	// A base image from Berth's store: LocalBases pulls it into the
	// store with the engine's pull; BuildKit takes it from the registry
	// of Berth's images on the builder network's gateway, never from the
	// test registry. The RUN step resolves a name through the builder's
	// NIC and the network's DNS server (forwarded to the test resolver).
	baseDir := t.TempDir()
	baseRef := reg.Host + "/busybox:1"
	baseDockerfile := "FROM " + baseRef + "\nRUN echo based on busybox > /f && (/bin/busybox nslookup registry.berth.test > /dns 2>&1 || true)\n"
	if err := os.WriteFile(filepath.Join(baseDir, "Dockerfile"), []byte(baseDockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	opts, err := m.LocalBases(ctx, []byte(baseDockerfile), nil, "")
	if err != nil || len(opts) != 2 {
		t.Fatalf("LocalBases: %q, %v", opts, err)
	}
	pulled := reg.requests()
	// Through Manager.Build (POST /build's path), which asks LocalBases
	// itself from the context's Dockerfile.
	var baseTar bytes.Buffer
	if err := tarDir(&baseTar, baseDir); err != nil {
		t.Fatal(err)
	}
	based := filepath.Join(t.TempDir(), "based.tar")
	bf, err := os.Create(based)
	if err != nil {
		t.Fatal(err)
	}
	var baseLines []string
	err = m.Build(ctx, builder.BuildRequest{Context: &baseTar, Output: bf, Progress: func(l string) { baseLines = append(baseLines, l) }})
	bf.Close()
	progress = strings.Join(baseLines, "\n")
	if err != nil {
		t.Fatalf("Manager.Build FROM %s: %v\n%s\nbuildkitd's log:\n%s", baseRef, err, progress, readFile(m.Status().Log))
	}
	t.Logf("build FROM a base in the store in %v (pull into the store included); LocalBases: %q; the registry of Berth's images served %+v",
		time.Since(start).Round(100*time.Millisecond), opts, m.RegistryStats())
	if n := reg.requests() - pulled; n != 0 {
		t.Errorf("the build sent %d requests to the base's registry; want none (the base comes from the store)", n)
	}
	if st := m.RegistryStats(); st.Manifests == 0 || st.Blobs < 2 {
		t.Errorf("the registry of Berth's images served %+v; want the base's manifest, config and layer", st)
	}
	if !strings.Contains(progress, m.RegistryHost()+"/") {
		t.Errorf("the build's progress does not show the base loaded from %s:\n%s", m.RegistryHost(), progress)
	}
	checkBasedImage(ctx, t, images, based, baseRef)

	// Idle: the builder stops; the next build starts it again and the
	// cache disk still holds the RUN step.
	waitFor(t, "the idle builder to stop", func() bool { return !m.Status().Running })
	out2 := t.TempDir()
	start = time.Now()
	// --wait: the builder's start outlasts gRPC's 20 s connect timeout
	// under TCG; buildctl then connects again.
	progress, err = build(dir, out2, "--wait")
	if err != nil {
		t.Fatalf("buildctl build after a restart: %v\n%s", err, progress)
	}
	t.Logf("build after the builder's restart in %v", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(progress, "RUN [\"/bin/busybox\"") || !cachedRun(progress) {
		t.Errorf("the build after a restart did not find the RUN step CACHED:\n%s", progress)
	}
	if got := readFile(filepath.Join(out2, "out", "result")); got != result {
		t.Errorf("the cached build's /out/result = %q, want %q", got, result)
	}

	// Manager.Build (POST /build): the context tar goes into the guest,
	// the result comes back as a docker archive that loads into Berth's
	// image store (two layers, the Dockerfile's CMD), and the build's
	// directory on the cache disk is gone afterwards.
	var ctxTar bytes.Buffer
	if err := tarDir(&ctxTar, dir); err != nil {
		t.Fatal(err)
	}
	var lines []string
	start = time.Now()
	built, err := m.BuildImage(ctx, builder.BuildRequest{Context: &ctxTar, Progress: func(l string) { lines = append(lines, l) }})
	if err != nil {
		t.Fatalf("Manager.BuildImage: %v\n%s", err, strings.Join(lines, "\n"))
	}
	t.Logf("Manager.BuildImage (cached) in %v", time.Since(start).Round(100*time.Millisecond))
	if cfg := built.Config; cfg == nil || len(cfg.RootFS.DiffIDs) != 2 || strings.Join(cfg.Config.Cmd, " ") != "/bin/busybox cat /out/result" {
		t.Errorf("the built image's config: %+v; want two layers (COPY, RUN) and the Dockerfile's CMD", cfg)
	}
	if !cachedRun(strings.Join(lines, "\n")) {
		t.Errorf("Manager.Build's progress does not show the RUN step CACHED:\n%s", strings.Join(lines, "\n"))
	}
	waitFor(t, "the build's directory to go", func() bool {
		// An error: the removal changed the tree while it was read.
		left, err := builder.BuildLeftovers(ctx, m)
		if err != nil {
			t.Logf("list the builds' directory: %v", err)
			return false
		}
		for _, isDir := range left {
			if isDir {
				return false
			}
		}
		return len(left) == 1
	})

	if out, err := m.Prune(ctx); err != nil || !strings.Contains(out, "Total:") {
		t.Errorf("Prune on the running builder: %q, %v; want buildctl prune's report", out, err)
	}
	if err := m.Stop(ctx); err != nil || m.Status().Running {
		t.Errorf("Stop: %v, status %+v", err, m.Status())
	}
}

// cachedRun reports whether BuildKit's plain progress shows the RUN step
// as CACHED.
func cachedRun(progress string) bool {
	ids := map[string]bool{}
	for _, line := range strings.Split(progress, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && strings.HasPrefix(f[0], "#") && strings.Contains(line, "RUN [") {
			ids[f[0]] = true
		}
		if len(f) == 2 && ids[f[0]] && f[1] == "CACHED" {
			return true
		}
	}
	return false
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// waitFor polls cond every 100 ms for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tarDir writes the files under dir as a tar stream, as a client sends a
// build context.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil || !fi.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil {
			_, err = tw.Write(b)
		}
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
