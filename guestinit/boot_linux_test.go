package main

import (
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthvm/berth/internal/testenv"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "mounting")
}

func mounted(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (unescapeMount(f[4]) == dir || strings.HasPrefix(unescapeMount(f[4]), dir+"/")) {
			out = append(out, unescapeMount(f[4]))
		}
	}
	return out
}

// TestUnmountUnder mounts a rootfs stand-in with nested mounts (one with
// a space in its path) and checks the shutdown path unmounts them all,
// deepest first.
func TestUnmountUnder(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	t.Cleanup(func() {
		for _, m := range mounted(t, root) {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	})
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"a", "a/b", "my dir"} {
		p := filepath.Join(root, sub)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(mounted(t, root)); n != 4 {
		t.Fatalf("set up %d mounts, want 4", n)
	}
	unmountUnder(log.New(io.Discard, "", 0), root)
	if left := mounted(t, root); len(left) != 0 {
		t.Errorf("still mounted after unmountUnder: %v", left)
	}
}

// TestUnmountUnderBusyRemountsReadOnly keeps the root busy (a file open
// for reading) and checks it ends read-only rather than left writable.
func TestUnmountUnderBusyRemountsReadOnly(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(root, "open-file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "open-file"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unmountUnder(log.New(io.Discard, "", 0), root)
	if len(mounted(t, root)) == 0 {
		t.Fatal("the busy mount was unmounted; want it remounted read-only")
	}
	if err := os.WriteFile(filepath.Join(root, "new"), nil, 0o644); err == nil {
		t.Error("the busy root is still writable")
	}
}

func TestLoadModuleErrors(t *testing.T) {
	err := loadModule(moduleEntry{Path: "/nonexistent/virtio_blk.ko"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/virtio_blk.ko") {
		t.Errorf("loadModule of a missing file: %v, want an error naming it", err)
	}
}

func TestIsDevNull(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if !isDevNull(int(f.Fd())) || isDevNull(int(g.Fd())) || !isDevNull(1<<20) {
		t.Errorf("isDevNull: /dev/null %v, a file %v, a closed fd %v; want true, false, true",
			isDevNull(int(f.Fd())), isDevNull(int(g.Fd())), isDevNull(1<<20))
	}
}
