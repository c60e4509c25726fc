//go:build darwin && cgo && !no_vz

package backend

import (
	"context"
	"errors"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/vz"
)

// Name is the backend New uses on this OS.
const Name = vz.Name

// New returns a Machine for cfg on this OS's backend:
// Virtualization.framework.
func New(cfg vmm.Config) (vmm.Machine, error) {
	m, err := vz.New(cfg)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Describe names the backend: "vz".
func Describe() string { return vz.Name }

// GuestConfigs are the kernel features a guest uses under this backend;
// pass them to initramfs.Build (Spec.Needs) so the initramfs carries only
// the modules the guest will load.
func GuestConfigs() []kernel.ConfigNeed { return vz.GuestConfigs() }

// SweepOrphans has nothing to do: Virtualization.framework VMs run
// inside the engine's process and die with it.
func SweepOrphans(ctx context.Context, stateDirs string) ([]Orphan, error) { return nil, nil }

// TemplateLayout fails: the vz backend cannot save or restore a VM yet.
// Virtualization.framework can (VZVirtualMachine's
// saveMachineStateToURL and restoreMachineStateFromURL, macOS 14), with
// the same Config.Template and Restore and a vmm.Snapshotter on its
// driver; not implemented, so containers boot cold.
func TemplateLayout(cfg vmm.Config) (string, error) {
	return "", errdefs.NotImplemented(errors.New("fast start: the vz backend cannot save or restore VMs yet"))
}

// SpareSupport says whether this backend can hand a running VM to a
// container (fast start's spare VM, vmm.HandoverDriver): vz cannot yet.
func SpareSupport() error {
	return errdefs.NotImplemented(errors.New("the vz backend cannot restore VMs or hand a running one to a container yet"))
}
