package launcher

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/internal/testenv"
)

// TestTemplateKeyAndSweep: containers that differ only in what is per VM (ID,
// root disk, directory) or per home (where the boot files are) share a
// template (New having swept what dead builds left and templates unused
// for templateMaxAge); other initramfs contents (a new guestinit),
// another memory size or boot-time shares do not.
func TestTemplateKeyAndSweep(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("templates exist on the QEMU backend (Linux) only")
	}
	if runtime.GOARCH == "amd64" {
		testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86: the layout names it")
	}
	dir := t.TempDir()
	h, err := home.Resolve(filepath.Join(dir, "h"))
	if err != nil {
		t.Fatal(err)
	}
	tdir := filepath.Join(dir, "templates")
	// What a build cut short by a dead engine leaves is swept by New,
	// once old enough not to be another engine's build under way.
	leftovers := []string{filepath.Join(tdir, "build-123", "root.img"), filepath.Join(tdir, ".abc.state.456")}
	building := []string{filepath.Join(tdir, "build-789", "root.img"), filepath.Join(tdir, ".def.state.789")}
	for _, p := range append(leftovers, building...) {
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, nil, 0o600)
	}
	old := time.Now().Add(-leftoverAge - time.Minute)
	for _, p := range []string{filepath.Join(tdir, "build-123"), filepath.Join(tdir, ".abc.state.456")} {
		os.Chtimes(p, old, old)
	}
	kept := filepath.Join(tdir, "abc.state")
	os.WriteFile(kept, nil, 0o600)
	stale := filepath.Join(tdir, "old.state")
	os.WriteFile(stale, nil, 0o600)
	long := time.Now().Add(-templateMaxAge - time.Hour)
	os.Chtimes(stale, long, long)
	leftovers = append(leftovers, stale)
	l := New(h, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, WithFastStart(true), WithTemplateDir(tdir))
	defer l.Close()
	for _, p := range leftovers {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("New left %s", p)
		}
	}
	for _, p := range append(building, kept) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("New removed %s: %v", p, err)
		}
	}
	if st := l.FastStartStatus(); !st.Enabled || st.Dir != tdir || len(st.Templates) != 1 || st.Templates[0].Key != "abc" {
		t.Errorf("FastStartStatus = %+v, want on, in %s, with template abc", st, tdir)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	boot := container.BootFiles{Arch: runtime.GOARCH, Kernel: write("vmlinux", "kernel"), Initramfs: write("initrd", "guestinit v1")}
	req := func(id string) container.LaunchRequest {
		return container.LaunchRequest{ID: id, Boot: boot, Dir: filepath.Join(dir, id), Rootfs: filepath.Join(dir, id, "rootfs.ext4"), CPUs: 2, MemoryBytes: 1 << 30}
	}
	key := func(r container.LaunchRequest) string {
		t.Helper()
		tpl, err := l.templateFor(l.config(r))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(tpl.path) != tdir || !strings.HasSuffix(tpl.path, ".state") {
			t.Errorf("template path %s is not %s/KEY.state", tpl.path, tdir)
		}
		return tpl.key
	}
	a := key(req("aaaa"))
	if b := key(req("bbbb")); b != a {
		t.Errorf("two containers of one layout have templates %s and %s", a, b)
	}
	// Another home's copies of the same boot files: the same template
	// (engines share them).
	other := req("ffff")
	other.Boot.Kernel, other.Boot.Initramfs = write("vmlinux-other-home", "kernel"), write("initrd-other-home", "guestinit v1")
	if key(other) != a {
		t.Error("the same boot files at other paths got another template")
	}
	// A layout's template is wanted from its second cold boot on.
	tpl, err := l.templateFor(l.config(req("aaaa")))
	if err != nil {
		t.Fatal(err)
	}
	if l.templates.wanted(tpl) {
		t.Error("a template was wanted at a layout's first boot")
	}
	if !l.templates.wanted(tpl) {
		t.Error("no template wanted at a layout's second boot")
	}
	mem := req("cccc")
	mem.MemoryBytes = 512 << 20
	if key(mem) == a {
		t.Error("another memory size kept the template")
	}
	boot.Initramfs = write("initrd", "guestinit v2, rebuilt")
	if key(req("dddd")) == a {
		t.Error("a new initramfs (guestinit) kept the template")
	}
	shares := req("eeee")
	shares.Shares = []vmm.Share{{Tag: "s", HostPath: dir}}
	if _, err := l.templateFor(l.config(shares)); err == nil {
		t.Error("a container with boot-time shares got a template")
	}
}

// TestTemplateDirInHome: templates live in the Berth home unless
// $BERTH_TEMPLATE_DIR moves them (make test points every test engine at
// one directory).
func TestTemplateDirInHome(t *testing.T) {
	h := home.Home{Dir: t.TempDir()}
	t.Setenv(TemplateDirEnv, "")
	if got, want := TemplateDir(h), filepath.Join(h.Dir, "templates"); got != want {
		t.Errorf("TemplateDir = %s, want %s", got, want)
	}
	moved := t.TempDir()
	t.Setenv(TemplateDirEnv, moved)
	if got := TemplateDir(h); got != moved {
		t.Errorf("TemplateDir with %s=%s = %s", TemplateDirEnv, moved, got)
	}
}
