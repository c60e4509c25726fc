//go:build linux

package qemu_test

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/qemu"
	"github.com/berthvm/berth/internal/kerneltest"
)

const guestinitPkg = "github.com/berthvm/berth/guestinit"

// busybox returns a static busybox for arch: the host's busybox-static on
// amd64, Debian's busybox-static:arm64 unpacked into the cache for arm64
// (apt-get download busybox-static:arm64 && dpkg -x).
func busybox(t testing.TB, arch string) string {
	t.Helper()
	if arch == "amd64" {
		p := testenv.RequireCommand(t, "busybox", "busybox-static")
		if f, err := elf.Open(p); err == nil {
			defer f.Close()
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					testenv.Unavailable(t, "%s is dynamically linked (apt-get install busybox-static)", p)
				}
			}
		}
		return p
	}
	dir := filepath.Join(filepath.Dir(kerneltest.CacheDir(t)), "busybox", arch)
	p := filepath.Join(dir, "bin", "busybox")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	dpkg := testenv.RequireCommand(t, "dpkg", "dpkg")
	debDir := filepath.Join(filepath.Dir(kerneltest.CacheDir(t)), "deb")
	debs, _ := filepath.Glob(filepath.Join(debDir, "busybox-static_*_"+arch+".deb"))
	if len(debs) == 0 {
		apt := testenv.RequireCommand(t, "apt-get", "apt")
		os.MkdirAll(debDir, 0o755)
		cmd := exec.Command(apt, "download", "-q", "busybox-static:"+arch)
		cmd.Dir = debDir
		if b, err := cmd.CombinedOutput(); err != nil {
			testenv.Unavailable(t, "apt-get download busybox-static:%s (needs dpkg --add-architecture %s): %v\n%s", arch, arch, err, b)
		}
		debs, _ = filepath.Glob(filepath.Join(debDir, "busybox-static_*_"+arch+".deb"))
	}
	if len(debs) == 0 {
		t.Fatalf("apt-get download left no busybox-static .deb in %s", debDir)
	}
	os.MkdirAll(filepath.Dir(dir), 0o755)
	if b, err := exec.Command(dpkg, "-x", debs[0], dir+".new").CombinedOutput(); err != nil {
		t.Fatalf("dpkg -x: %v\n%s", err, b)
	}
	os.RemoveAll(dir)
	if err := os.Rename(dir+".new", dir); err != nil {
		t.Fatal(err)
	}
	return p
}

// busyboxRootfs makes an ext4 root disk holding a static busybox as
// /bin/busybox and /bin/sh, with mkfs.ext4 -d: this package's tests boot
// VMs without images (engine/rootfs builds container root disks).
func busyboxRootfs(t testing.TB, arch string) string {
	t.Helper()
	mkfs := testenv.RequireCommand(t, "mkfs.ext4", "e2fsprogs")
	bb, err := os.ReadFile(busybox(t, arch))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc", "run", "root"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Symlink("busybox", filepath.Join(dir, "bin", "sh"))
	os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc", "group"), []byte("root:x:0:\n"), 0o644)
	img := filepath.Join(t.TempDir(), "rootfs.ext4")
	if b, err := exec.Command(mkfs, "-q", "-F", "-d", dir, img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, b)
	}
	return img
}

// agentPing is a vmm.PingFunc over the real agent protocol.
func agentPing(ctx context.Context, d transport.Dialer) error {
	c, err := agent.Dial(ctx, d)
	if err != nil {
		return err
	}
	return c.Close()
}

// agentShutdown is a vmm.ShutdownFunc over the real agent protocol.
func agentShutdown(ctx context.Context, d transport.Dialer) error {
	c, err := agent.Dial(ctx, d)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Shutdown(ctx, false)
}

// bootGuestinit boots the real guestinit for arch with a busybox root
// disk and returns the running Machine and an agent client.
func bootGuestinit(t *testing.T, arch, name string, opts ...qemu.Option) (*qemu.Machine, *agent.Client, vmm.Config) {
	t.Helper()
	g := newGuest(t, arch, guestinitPkg, nil)
	g.root = busyboxRootfs(t, arch)
	cfg := g.config(t, name)
	cfg.Ping = agentPing
	cfg.Shutdown = agentShutdown
	m, err := qemu.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill(context.Background()) })
	c, err := agent.Dial(ctx, m.Dialer())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return m, c, cfg
}

// runEchoOK runs /bin/sh -c 'echo ok; exit 3' in a new container and
// checks its output and exit code.
func runEchoOK(t *testing.T, c *agent.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	st, err := c.Run(ctx, &agentpb.CreateProcessRequest{
		Id:   "main",
		Args: []string{"/bin/sh", "-c", "echo ok; exit 3"},
		Env:  []string{"PATH=/bin"},
	}, agent.Stdio{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, errOut.String())
	}
	if out.String() != "ok\n" || st.Code != 3 {
		t.Errorf("sh -c 'echo ok; exit 3' = %q, exit %d (stderr %q); want \"ok\\n\", 3", out.String(), st.Code, errOut.String())
	}
}

// runStdio checks stdin's in-band EOF over a real transport: several MiB
// of random bytes through cat arrive whole and in order before the EOF,
// and a tty whose input ends keeps running, all its output arriving.
func runStdio(t *testing.T, c *agent.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	payload := make([]byte, 4<<20+777)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	var out, errOut bytes.Buffer
	st, err := c.Run(ctx, &agentpb.CreateProcessRequest{Id: "cat", Args: []string{"/bin/busybox", "cat"}, Env: []string{"PATH=/bin"}},
		agent.Stdio{Stdin: bytes.NewReader(payload), Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatalf("run cat: %v (stderr %q)", err, errOut.String())
	}
	if st.Code != 0 || !bytes.Equal(out.Bytes(), payload) {
		t.Errorf("cat of %d random bytes: exit %d, %d bytes out, equal %v", len(payload), st.Code, out.Len(), bytes.Equal(out.Bytes(), payload))
	}
	out.Reset()
	st, err = c.Run(ctx, &agentpb.CreateProcessRequest{Id: "tty", Tty: true, Env: []string{"PATH=/bin"},
		Args: []string{"/bin/sh", "-c", "read a; echo got:$a; busybox sleep 0.5; busybox seq 1 3000; exit 4"}},
		agent.Stdio{Stdin: strings.NewReader("hi\n"), Stdout: &out})
	if err != nil {
		t.Fatalf("run tty: %v", err)
	}
	var want strings.Builder
	for i := 1; i <= 3000; i++ {
		fmt.Fprintf(&want, "%d\r\n", i)
	}
	if st.Code != 4 || !strings.HasSuffix(out.String(), "got:hi\r\n"+want.String()) {
		t.Errorf("tty: exit %d, %d bytes of output, ends %q; want exit 4 and got:hi then 1..3000", st.Code, out.Len(), out.String()[max(0, out.Len()-40):])
	}
}

// logBootTimes logs the host's and guestinit's view of the boot.
func logBootTimes(t *testing.T, m *qemu.Machine, c *agent.Client) {
	tl := m.Timeline()
	info, err := c.Info(context.Background())
	if err != nil {
		t.Errorf("Info: %v", err)
		return
	}
	b := info.GetBoot()
	t.Logf("host: qemu running +%v, first console byte +%v, agent ready +%v; guest (since kernel start): init %v, modules loaded %v, rootfs mounted %v, agent serving %v",
		tl.Running.Sub(tl.Launched), tl.FirstOutput.Sub(tl.Launched), tl.AgentReady.Sub(tl.Launched),
		time.Duration(b.GetInitStartNs()), time.Duration(b.GetModulesLoadedNs()), time.Duration(b.GetRootfsMountedNs()), time.Duration(b.GetAgentServingNs()))
}

// TestGuestinitRunsCommand boots Debian's amd64 kernel with the real
// guestinit and a busybox root disk, pings the agent over
// virtio-serial+yamux, runs a shell command in a container, pipes stdin
// (its EOF in-band) and a tty through that transport, and powers the VM
// off through the agent.
func TestGuestinitRunsCommand(t *testing.T) {
	m, c, _ := bootGuestinit(t, "amd64", "guestinit", qemu.WithTransport(qemu.TransportSerial))
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	logBootTimes(t, m, c)
	runEchoOK(t, c)
	runStdio(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Stop(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if exit, _ := m.Wait(ctx); exit.Reason != vmm.ExitPowerOff {
		t.Errorf("exit after Stop = %v; want poweroff", exit)
	}
}

// TestGuestinitArm64 boots Debian's arm64 kernel (an uncompressed Image)
// under qemu-system-aarch64 -machine virt with TCG, with guestinit built
// for arm64 and busybox-static:arm64, and runs a command.
func TestGuestinitArm64(t *testing.T) {
	m, c, _ := bootGuestinit(t, "arm64", "guestinit-arm64", qemu.WithAccel(qemu.AccelTCG))
	logBootTimes(t, m, c)
	runEchoOK(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Stop(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if exit, _ := m.Wait(ctx); exit.Reason != vmm.ExitPowerOff {
		t.Errorf("exit after Stop = %v; want poweroff", exit)
	}
}
