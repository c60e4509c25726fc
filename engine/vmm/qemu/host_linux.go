//go:build linux

package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Accel is QEMU's accelerator choice.
type Accel string

// The accelerators.
const (
	// AccelAuto uses KVM when KVMUsable says it works, TCG otherwise. The
	// environment variable BERTH_QEMU_ACCEL (kvm or tcg) overrides it.
	AccelAuto Accel = ""
	// AccelKVM: hardware virtualisation through /dev/kvm.
	AccelKVM Accel = "kvm"
	// AccelTCG: QEMU's CPU emulator (slow, works everywhere).
	AccelTCG Accel = "tcg"
)

// KVMUsable reports whether KVM can run a guest of arch here, and if not,
// why. /dev/kvm opening is not enough: inside some VMs it opens while the
// CPU exposes no virtualisation extensions, and guests then hang (seen on
// the machines this project is tested on: QEMU boots SeaBIOS and stalls).
// So on x86 the CPU must also list vmx or svm in /proc/cpuinfo.
func KVMUsable(arch string) (bool, string) {
	if arch != runtime.GOARCH {
		return false, fmt.Sprintf("guest %s on host %s", arch, runtime.GOARCH)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Sprintf("/dev/kvm: %v", err)
	}
	f.Close()
	if arch == "amd64" {
		info, err := os.ReadFile("/proc/cpuinfo")
		if err != nil {
			return false, fmt.Sprintf("read /proc/cpuinfo: %v", err)
		}
		for _, line := range bytes.Split(info, []byte("\n")) {
			if !bytes.HasPrefix(line, []byte("flags")) {
				continue
			}
			for _, fl := range bytes.Fields(line) {
				if string(fl) == "vmx" || string(fl) == "svm" {
					return true, ""
				}
			}
			return false, "/dev/kvm opens but the CPU lists neither vmx nor svm (nested virtualisation is off)"
		}
	}
	return true, ""
}

// HostAccel is the accelerator a Machine for a guest of arch gets here
// without WithAccel: $BERTH_QEMU_ACCEL (kvm or tcg) when set, else KVM
// when KVMUsable, else TCG. New decides with it, so what a status
// display reports is what VMs run under.
func HostAccel(arch string) Accel {
	a, _ := resolveAccel(AccelAuto, arch)
	return a
}

// Describe names the backend with an accelerator: "qemu (kvm)".
func Describe(a Accel) string { return "qemu (" + string(a) + ")" }

// resolveAccel turns AccelAuto into a concrete choice.
func resolveAccel(a Accel, arch string) (Accel, string) {
	if a != AccelAuto {
		return a, "requested"
	}
	switch env := os.Getenv("BERTH_QEMU_ACCEL"); env {
	case "kvm", "tcg":
		return Accel(env), "BERTH_QEMU_ACCEL"
	}
	if ok, why := KVMUsable(arch); !ok {
		return AccelTCG, why
	}
	return AccelKVM, "/dev/kvm works"
}

// VhostVsockAvailable reports whether /dev/vhost-vsock opens.
func VhostVsockAvailable() bool {
	f, err := os.OpenFile("/dev/vhost-vsock", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// vhostVsockSetGuestCID is VHOST_VSOCK_SET_GUEST_CID, _IOW(0xAF, 0x60, __u64).
const vhostVsockSetGuestCID = 0x4008af60

// openVhostVsock opens /dev/vhost-vsock and claims a free guest context
// ID on it, the way libvirt does, so QEMU gets a descriptor (vhostfd=)
// whose CID no other VM holds.
func openVhostVsock() (*os.File, uint32, error) {
	f, err := os.OpenFile("/dev/vhost-vsock", os.O_RDWR, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("open /dev/vhost-vsock: %w", err)
	}
	for try := 0; try < 64; try++ {
		// 3 is the first CID a guest may have; stay well below 2^32-1.
		cid := uint64(3 + rand.Uint32N(1<<30))
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), vhostVsockSetGuestCID, uintptr(unsafe.Pointer(&cid)))
		if errno == 0 {
			return f, uint32(cid), nil
		}
		if !errors.Is(errno, unix.EADDRINUSE) {
			f.Close()
			return nil, 0, fmt.Errorf("set vhost-vsock guest CID: %w", errno)
		}
	}
	f.Close()
	return nil, 0, errors.New("set vhost-vsock guest CID: no free CID after 64 tries")
}
