//go:build darwin && cgo && !no_vz

package vz

import "github.com/berthvm/berth/engine/kernel"

// GuestConfigs are the kernel features a guest uses under
// Virtualization.framework: kernel.GuestConfigs less virtio-9p (boot-time
// shares are virtio-fs; 9p itself stays for run-time sharing over an
// agent connection).
func GuestConfigs() []kernel.ConfigNeed {
	var out []kernel.ConfigNeed
	for _, n := range kernel.GuestConfigs() {
		if n.Option != "NET_9P_VIRTIO" {
			out = append(out, n)
		}
	}
	return out
}
