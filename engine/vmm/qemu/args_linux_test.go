//go:build linux

package qemu

import (
	"net"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/vmm"
)

func TestCommandLine(t *testing.T) {
	cfg, err := vmm.Config{
		ID: "c1", StateDir: "/s", Kernel: "/k", Initramfs: "/i",
		Root:    vmm.Disk{Path: "/r,1.ext4"},
		Disks:   []vmm.Disk{{Path: "/d", ReadOnly: true}},
		Network: &vmm.Network{},
		Shares:  []vmm.Share{{Tag: "src", HostPath: "/h", ReadOnly: true}},
		Cmdline: "berth.debug=1",
	}.Validate("amd64")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		arch  string
		l     launch
		want  []string
		avoid []string
	}{
		{"amd64", launch{accel: AccelTCG}, []string{
			"-machine q35", "-accel tcg", "-nodefaults", "-no-reboot", "-m 1024", "-smp 2",
			"file=/r,,1.ext4,if=none,id=disk0,format=raw", "virtio-blk-pci,drive=disk0",
			"id=disk1,format=raw,cache=writeback,discard=unmap,readonly=on",
			"virtserialport,chardev=agent,name=berth.agent",
			"virtio-net-pci,netdev=net0,romfile=,mac=" + vmm.MACFor("c1").String(),
			"-fsdev local,id=fs0,path=/h,security_model=none,readonly=on", "mount_tag=src",
			"console=ttyS0", "berth.root=/dev/vda", "berth.transport=serial", "berth.debug=1",
		}, []string{"-cpu host", "vhost-vsock", "-bios"}},
		{"amd64", launch{accel: AccelTCG, bios: "/q/qboot.rom"}, []string{"-bios /q/qboot.rom", "-cpu max"}, nil},
		{"amd64", launch{accel: AccelKVM, vsock: true, cid: 42}, []string{"-accel kvm", "-cpu host", "vhost-vsock-pci,guest-cid=42,vhostfd=5", "berth.transport=vsock"}, []string{"virtserialport"}},
		{"arm64", launch{accel: AccelTCG}, []string{"-machine virt", "-cpu cortex-a72", "console=ttyAMA0"}, []string{"ttyS0", "gic-version"}},
		{"arm64", launch{accel: AccelKVM}, []string{"-machine virt,gic-version=host", "-cpu host"}, []string{"cortex-a72"}},
	} {
		c := cfg
		c.Arch = tc.arch
		line := strings.Join(commandLine(c, tc.l), " ")
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s %+v: command line lacks %q:\n%s", tc.arch, tc.l, w, line)
			}
		}
		for _, a := range tc.avoid {
			if strings.Contains(line, a) {
				t.Errorf("%s %+v: command line has %q:\n%s", tc.arch, tc.l, a, line)
			}
		}
	}
}

// TestCommandLineSharePorts: the spare share ports are named
// virtio-serial ports on the agent's device (or a device of their own
// with vsock), on the descriptors after the NIC's, and port 0 is left
// for a console.
func TestCommandLineSharePorts(t *testing.T) {
	base := vmm.Config{ID: "c1", StateDir: "/s", Kernel: "/k", Initramfs: "/i", Root: vmm.Disk{Path: "/r"}, SharePorts: 2}
	withLink := base
	withLink.Network = &vmm.Network{Link: linkStub{}}
	withTAP := base
	withTAP.Network = &vmm.Network{TAP: "bt-0123456789ab"}
	for _, tc := range []struct {
		name string
		cfg  vmm.Config
		l    launch
		want []string
	}{
		{"serial", base, launch{accel: AccelTCG}, []string{
			"virtio-serial-pci,max_ports=4",
			"virtserialport,chardev=agent,name=berth.agent",
			"-chardev socket,id=share0,fd=6 -device virtserialport,chardev=share0,name=berth.share.0",
			"-chardev socket,id=share1,fd=7 -device virtserialport,chardev=share1,name=berth.share.1",
		}},
		{"vsock", base, launch{accel: AccelKVM, vsock: true, cid: 3}, []string{
			"virtio-serial-pci,max_ports=3", "socket,id=share1,fd=7",
		}},
		{"link", withLink, launch{accel: AccelTCG}, []string{
			"addr.str=6", "socket,id=share0,fd=7", "socket,id=share1,fd=8",
		}},
		{"tap", withTAP, launch{accel: AccelTCG}, []string{
			"-netdev tap,id=net0,ifname=bt-0123456789ab,script=no,downscript=no -device virtio-net-pci,netdev=net0",
			"socket,id=share0,fd=6",
		}},
	} {
		cfg, err := tc.cfg.Validate("amd64")
		if err != nil {
			t.Fatal(err)
		}
		line := strings.Join(commandLine(cfg, tc.l), " ")
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: command line lacks %q:\n%s", tc.name, w, line)
			}
		}
	}
	if _, err := (vmm.Config{ID: "c1", StateDir: "/s", Kernel: "/k", Initramfs: "/i", Root: vmm.Disk{Path: "/r"}, SharePorts: vmm.MaxSharePorts + 1}).Validate("amd64"); err == nil {
		t.Errorf("Validate took %d share ports", vmm.MaxSharePorts+1)
	}
}

// linkStub is a vmm.Link that carries nothing: only its presence
// matters to the command line.
type linkStub struct{}

func (linkStub) ServeStream(net.Conn) error { return nil }
