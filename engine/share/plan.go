package share

import (
	"strconv"

	"github.com/berthvm/berth/engine/vmm"
)

// Tag is the share tag Plan gives a container's i-th mount.
func Tag(i int) string { return "berth" + strconv.Itoa(i) }

// Plan is a container's mounts as its VM gets them at boot: one share
// per mount, tagged Tag(i), read-only where the mount is. The backend
// decides the devices (engine/vmm: a virtio-9p device per share under
// QEMU, one virtio-fs device with a directory per share on
// Virtualization.framework); the guest learns how to reach each one from
// the VM's GuestShare.
func Plan(mounts []Mount) []vmm.Share {
	out := make([]vmm.Share, 0, len(mounts))
	for i, m := range mounts {
		out = append(out, vmm.Share{Tag: Tag(i), HostPath: m.HostPath, ReadOnly: m.ReadOnly})
	}
	return out
}
