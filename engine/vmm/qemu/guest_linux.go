//go:build linux

package qemu

import "github.com/berthvm/berth/engine/kernel"

// GuestConfigs are the kernel features a guest uses under this backend on
// this host — kernel.GuestConfigs less what QEMU here never gives it:
// virtio-fs (boot-time shares are virtio-9p) and, without
// /dev/vhost-vsock, vsock (the agent rides virtio-serial). Passed to
// initramfs.Build, it keeps modules the guest would never use out of the
// boot.
func GuestConfigs() []kernel.ConfigNeed {
	vsock := VhostVsockAvailable()
	var out []kernel.ConfigNeed
	for _, n := range kernel.GuestConfigs() {
		switch n.Option {
		case "FUSE_FS", "VIRTIO_FS":
			continue
		case "VSOCKETS", "VIRTIO_VSOCKETS":
			if !vsock {
				continue
			}
		}
		out = append(out, n)
	}
	return out
}
