package backend

import (
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/qemu"
)

// Name is the backend New uses on this OS.
const Name = "qemu"

// New returns a Machine for cfg on this OS's backend: QEMU, with KVM when
// it works here and TCG otherwise (BERTH_QEMU_ACCEL=kvm|tcg overrides),
// and vhost-vsock for the agent when /dev/vhost-vsock opens, else
// virtio-serial with yamux.
func New(cfg vmm.Config) (vmm.Machine, error) {
	m, err := qemu.New(cfg)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// GuestConfigs are the kernel features a guest uses under this backend;
// pass them to initramfs.Build (Spec.Needs) so the initramfs carries only
// the modules the guest will load.
func GuestConfigs() []kernel.ConfigNeed { return qemu.GuestConfigs() }
