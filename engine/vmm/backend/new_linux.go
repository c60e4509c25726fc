package backend

import (
	"context"
	"path/filepath"
	"runtime"

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

// Describe names the backend and the accelerator New's VMs run under
// here, "qemu (kvm)" or "qemu (tcg)": the decision New makes, with
// BERTH_QEMU_ACCEL.
func Describe() string { return qemu.Describe(qemu.HostAccel(runtime.GOARCH)) }

// GuestConfigs are the kernel features a guest uses under this backend;
// pass them to initramfs.Build (Spec.Needs) so the initramfs carries only
// the modules the guest will load.
func GuestConfigs() []kernel.ConfigNeed { return qemu.GuestConfigs() }

// SweepOrphans stops the QEMU processes an engine that is gone left
// running, for the VMs whose Config.StateDir matches stateDirs (a
// filepath.Glob pattern): each is identified by the pid and start time in
// its pid file, so a recycled pid is never killed.
func SweepOrphans(ctx context.Context, stateDirs string) ([]Orphan, error) {
	stale, err := qemu.Sweep(ctx, filepath.Join(stateDirs, qemu.PidFileName))
	out := make([]Orphan, 0, len(stale))
	for _, s := range stale {
		out = append(out, Orphan{ID: s.ID, PID: s.PID, Killed: s.Killed})
	}
	return out, err
}

// TemplateLayout describes what a VM restored from a saved template must
// share with it (vmm.Config.Template, Restore): QEMU's binary and
// command line without the per-VM parts (qemu.TemplateLayout). An error
// says why cfg cannot be saved or restored here.
func TemplateLayout(cfg vmm.Config) (string, error) { return qemu.TemplateLayout(cfg) }

// SpareSupport says whether this backend can hand a running VM to a
// container (fast start's spare VM, vmm.HandoverDriver): QEMU can.
func SpareSupport() error { return nil }
