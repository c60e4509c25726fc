package backend_test

import (
	"testing"

	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/backend"
	"github.com/berthvm/berth/engine/vmm/qemu"
)

func TestNewPicksQEMUOnLinux(t *testing.T) {
	m, err := backend.New(vmm.Config{ID: "b1", StateDir: t.TempDir(), Kernel: "/k", Initramfs: "/i", Root: vmm.Disk{Path: "/r"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*qemu.Machine); !ok || backend.Name != "qemu" {
		t.Errorf("backend.New = %T (%s), want *qemu.Machine", m, backend.Name)
	}
	if m.State() != vmm.StateCreated {
		t.Errorf("state %v", m.State())
	}
	for _, n := range backend.GuestConfigs() {
		if n.Option == "VIRTIO_FS" {
			t.Error("QEMU's guest configs include virtio-fs, which QEMU never gives the guest")
		}
	}
	if _, err := backend.New(vmm.Config{}); err == nil {
		t.Error("New accepted an empty config")
	}
}

// TestDescribeIsWhatVMsRunUnder: the accelerator a status display reports
// is the one a new VM gets, BERTH_QEMU_ACCEL included.
func TestDescribeIsWhatVMsRunUnder(t *testing.T) {
	for _, accel := range []string{"tcg", "kvm"} {
		t.Setenv("BERTH_QEMU_ACCEL", accel)
		m, err := backend.New(vmm.Config{ID: "b2", StateDir: t.TempDir(), Kernel: "/k", Initramfs: "/i", Root: vmm.Disk{Path: "/r"}})
		if err != nil {
			t.Fatal(err)
		}
		want := "qemu (" + accel + ")"
		if got := backend.Describe(); got != want {
			t.Errorf("BERTH_QEMU_ACCEL=%s: Describe() = %q, want %q", accel, got, want)
		}
		if got := m.Backend(); got != want {
			t.Errorf("BERTH_QEMU_ACCEL=%s: the VM runs under %q, want %q", accel, got, want)
		}
	}
}
