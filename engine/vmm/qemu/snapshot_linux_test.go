//go:build linux

package qemu

import (
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/internal/testenv"
)

// TestTemplateCommandLine: a template and a restore get guestinit's
// template parameter, SeaBIOS (no qboot) with a vmgenid device and
// named root disk nodes, and the restore streams its state in through a
// quoted exec: URI.
func TestTemplateCommandLine(t *testing.T) {
	base := vmm.Config{ID: "c1", StateDir: "/s", Kernel: "/k", Initramfs: "/i", Root: vmm.Disk{Path: "/r"}, Network: &vmm.Network{}, Arch: "amd64"}
	tpl := base
	tpl.Template = true
	res := base
	res.Restore = "/h/templates/it's.state"
	// The root disk's nodes are named: Handover reopens them.
	const rootNames = "file=/r,if=none,id=disk0,format=raw,cache=writeback,discard=unmap,node-name=root,file.node-name=root-file"
	d := newDriver(res, options{accel: AccelTCG})
	if l := d.plan(); l.bios != "" {
		t.Errorf("a restore's plan uses firmware %q, want SeaBIOS (QEMU's default)", l.bios)
	}
	for _, tc := range []struct {
		cfg         vmm.Config
		want, avoid []string
	}{
		{base, nil, []string{vmm.TemplateParam, "vmgenid", "-incoming", "node-name"}},
		{tpl, []string{vmm.TemplateParam, "-device vmgenid,guid=auto", rootNames}, []string{"-incoming"}},
		{res, []string{vmm.TemplateParam, "-device vmgenid,guid=auto", `-incoming exec:cat '/h/templates/it'\''s.state'`, rootNames}, nil},
	} {
		line := strings.Join(commandLine(tc.cfg, launch{accel: AccelTCG}), " ")
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("template=%v restore=%q: command line lacks %q:\n%s", tc.cfg.Template, tc.cfg.Restore, w, line)
			}
		}
		for _, a := range tc.avoid {
			if strings.Contains(line, a) {
				t.Errorf("template=%v restore=%q: command line has %q:\n%s", tc.cfg.Template, tc.cfg.Restore, a, line)
			}
		}
	}
	if out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(`a'b "c" $d`)).Output(); err != nil || string(out) != `a'b "c" $d` {
		t.Errorf("shellQuote does not survive sh: %q, %v", out, err)
	}
}

// TestTemplateLayout: the layout ignores what differs per VM (ID, disk
// paths, MAC, the restore file) and changes with what a restore must
// match (memory, vCPUs, the NIC's backend); shares and vhost-vsock are
// refused.
func TestTemplateLayout(t *testing.T) {
	qemu := testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86: the layout names the binary")
	base := vmm.Config{ID: "a", StateDir: "/s", Kernel: "/k", Initramfs: "/i", Root: vmm.Disk{Path: "/ra"}, Network: &vmm.Network{}, Arch: "amd64"}
	layout := func(c vmm.Config, opt ...Option) string {
		t.Helper()
		s, err := TemplateLayout(c, append([]Option{WithAccel(AccelTCG), WithTransport(TransportSerial)}, opt...)...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := layout(base)
	if !strings.Contains(want, qemu) {
		t.Errorf("layout does not name the binary %s:\n%s", qemu, want)
	}
	other := base
	other.ID, other.StateDir, other.Root.Path, other.Restore = "b", "/t", "/rb", "/x.state"
	other.Network = &vmm.Network{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	if got := layout(other); got != want {
		t.Errorf("per-VM differences changed the layout:\n%s\nvs\n%s", got, want)
	}
	for name, c := range map[string]vmm.Config{
		"memory": func() vmm.Config { c := base; c.MemoryMiB = 512; return c }(),
		"vCPUs":  func() vmm.Config { c := base; c.CPUs = 1; return c }(),
		"switch": func() vmm.Config { c := base; c.Network = &vmm.Network{Link: nopLink{}}; return c }(),
		"no NIC": func() vmm.Config { c := base; c.Network = nil; return c }(),
	} {
		if layout(c) == want {
			t.Errorf("a different %s left the layout the same", name)
		}
	}
	shares := base
	shares.Shares = []vmm.Share{{Tag: "s", HostPath: "/h"}}
	if _, err := TemplateLayout(shares, WithAccel(AccelTCG), WithTransport(TransportSerial)); err == nil || !strings.Contains(err.Error(), "share") {
		t.Errorf("layout with boot-time shares: %v, want an error about shares", err)
	}
	if _, err := TemplateLayout(base, WithAccel(AccelTCG), WithTransport(TransportVsock)); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("layout with vhost-vsock: %v, want not implemented", err)
	}
	tap := base
	tap.Network = &vmm.Network{TAP: "bt-0123456789ab"}
	if _, err := TemplateLayout(tap, WithAccel(AccelTCG), WithTransport(TransportSerial)); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("layout with a TAP NIC: %v, want not implemented", err)
	}
}

// nopLink is a Link that is never served (the layout only looks at
// whether there is one).
type nopLink struct{}

func (nopLink) ServeStream(net.Conn) error { return errors.New("nopLink is not served") }
