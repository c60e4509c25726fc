package backend

import (
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/vz"
)

// Name is the backend New uses on this OS.
const Name = "vz"

// New returns a Machine for cfg on this OS's backend:
// Virtualization.framework.
func New(cfg vmm.Config) (vmm.Machine, error) {
	m, err := vz.New(cfg)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// GuestConfigs are the kernel features a guest uses under this backend;
// pass them to initramfs.Build (Spec.Needs) so the initramfs carries only
// the modules the guest will load.
func GuestConfigs() []kernel.ConfigNeed { return vz.GuestConfigs() }
