package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	c, err := parseCmdline("console=ttyS0 panic=-1 quiet berth.root=/dev/vda berth.rootfstype=ext4 berth.rootflags=noatime,discard berth.transport=serial berth.debug=1 berth.template=1\n")
	if err != nil {
		t.Fatal(err)
	}
	want := bootConfig{Root: "/dev/vda", RootFSType: "ext4", RootFlags: "noatime,discard", Transport: "serial", SerialPort: "berth.agent", Debug: true, Template: true}
	if c != want {
		t.Errorf("parseCmdline = %+v, want %+v", c, want)
	}
	d, err := parseCmdline("console=hvc0")
	if err != nil || d.Transport != "vsock" || d.RootFSType != "ext4" || d.Root != "" || d.Template {
		t.Errorf("defaults = %+v, %v; want vsock, ext4, no root", d, err)
	}
	for _, bad := range []string{"berth.transport=tcp", "berth.rooot=/dev/vda", "berth.root=vda", "berth.debug=maybe", "berth.template=yes"} {
		if _, err := parseCmdline(bad); err == nil || !strings.Contains(err.Error(), strings.SplitN(bad, "=", 2)[0]) {
			t.Errorf("parseCmdline(%q) = %v, want an error naming the parameter", bad, err)
		}
	}
}

func TestParseLoadOrder(t *testing.T) {
	in := `# modules for the boot, dependencies first
/lib/modules/virtio_ring.ko

crc32c_generic.ko
/lib/modules/ext4.ko.xz
/lib/modules/loop.ko max_loop=8 max_part=2
`
	got, err := parseLoadOrder(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []moduleEntry{
		{Path: "/lib/modules/virtio_ring.ko"},
		{Path: "/lib/modules/crc32c_generic.ko"},
		{Path: "/lib/modules/ext4.ko.xz"},
		{Path: "/lib/modules/loop.ko", Params: "max_loop=8 max_part=2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseLoadOrder = %+v, want %+v", got, want)
	}
	if _, err := parseLoadOrder(strings.NewReader("/lib/modules/README\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a non-.ko line: %v, want an error naming line 1", err)
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/run/berth/rootfs/my\040dir`); got != "/run/berth/rootfs/my dir" {
		t.Errorf("unescapeMount = %q", got)
	}
}

// TestStaticBuild builds guestinit the way the initramfs ships it, for
// both guest architectures, and checks the result is a static ELF (no
// PT_INTERP, no dynamic section) for the right machine.
func TestStaticBuild(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, tc := range []struct {
		arch    string
		machine elf.Machine
	}{{"amd64", elf.EM_X86_64}, {"arm64", elf.EM_AARCH64}} {
		t.Run(tc.arch, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "guestinit")
			cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+tc.arch)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, b)
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != tc.machine {
				t.Errorf("machine %v, want %v", f.Machine, tc.machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("has a %v program header: not static", p.Type)
				}
			}
			st, _ := os.Stat(out)
			t.Logf("linux/%s stripped size: %d bytes (%.1f MiB)", tc.arch, st.Size(), float64(st.Size())/(1<<20))
		})
	}
}

// TestNoHostOnlyDependencies keeps the wall: nothing guestinit links may
// pull in host-only code, nor net/http (an HTTP stack has no business in
// the guest and costs it about 1.4 MiB).
func TestNoHostOnlyDependencies(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}: {{join .Imports \" \"}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		for _, banned := range []string{"go-containerregistry", "Code-Hex/vz", "darwinkit", "berth/engine/ext4", "berth/engine/rootfs", "berth/engine/image", "berth/engine/vmm", "berth/engine/api", "berth/engine/container", "berthvm/berth/app"} {
			if strings.Contains(pkg, banned) {
				t.Errorf("guestinit links host-only package %s", pkg)
			}
		}
		if slices.Contains(strings.Fields(imports), "net/http") {
			t.Errorf("%s imports net/http, which guestinit then links", pkg)
		}
	}
}
