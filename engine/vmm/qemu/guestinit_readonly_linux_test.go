//go:build linux

package qemu_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/vmm/qemu"
	"github.com/berthvm/berth/internal/testenv"
)

// TestGuestinitReadOnlyRootWithoutMountPoints boots the real guestinit on
// a root disk with no /proc, /sys or /dev, makes the container root
// read-only as `run --read-only` does, and runs a container: its mount
// points are made before the root turns read-only.
func TestGuestinitReadOnlyRootWithoutMountPoints(t *testing.T) {
	g := newGuest(t, "amd64", guestinitPkg, nil)
	g.root = busyboxRootfs(t, "amd64")
	debugfs := testenv.RequireCommand(t, "debugfs", "e2fsprogs")
	for _, d := range []string{"proc", "sys", "dev"} {
		if b, err := exec.Command(debugfs, "-w", "-R", "rmdir "+d, g.root).CombinedOutput(); err != nil || bytes.Contains(b, []byte("rmdir:")) {
			t.Fatalf("debugfs rmdir %s: %v\n%s", d, err, b)
		}
	}
	if ls := testenv.Debugfs(t, g.root, "ls -l /"); strings.Contains(ls, " proc") || strings.Contains(ls, " dev") {
		t.Fatalf("the root disk still has /proc or /dev:\n%s", ls)
	}
	cfg := g.config(t, "guestinit-ro")
	cfg.Ping = agentPing
	cfg.Shutdown = agentShutdown
	m, err := qemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout+time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill(context.Background()) })
	c, err := agent.Dial(ctx, m.Dialer())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mount(ctx, &agentpb.MountRequest{Source: "rootfs", Target: "/", Options: []string{"remount", "bind", "ro"}}); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	st, err := c.Run(ctx, &agentpb.CreateProcessRequest{
		Id:   "main",
		Args: []string{"/bin/sh", "-c", "/bin/busybox cat /proc/1/comm; /bin/busybox ls -d /sys/kernel /dev/null /dev/pts; /bin/busybox touch /x"},
		Env:  []string{"PATH=/bin"},
	}, agent.Stdio{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatalf("run on a read-only root without mount points: %v (stderr %q)", err, errOut.String())
	}
	if want := "sh\n/dev/null\n/dev/pts\n/sys/kernel\n"; out.String() != want || st.Code == 0 || !bytes.Contains(errOut.Bytes(), []byte("Read-only")) {
		t.Errorf("container: %q, exit %d, stderr %q; want %q and a read-only touch", out.String(), st.Code, errOut.String(), want)
	}
}
