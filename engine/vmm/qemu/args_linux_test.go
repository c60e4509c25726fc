//go:build linux

package qemu

import (
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
