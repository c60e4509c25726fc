package engine

import (
	"runtime"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/qemu"
)

// newMachine makes a QEMU micro-VM (KVM when /dev/kvm opens, else TCG).
func newMachine(cfg vmm.Config) (vmm.Machine, error) { return qemu.New(cfg) }

// guestNetwork is QEMU user-mode networking's fixed plan: the guest is
// 10.0.2.15/24 behind the gateway 10.0.2.2, with DNS at 10.0.2.3.
func guestNetwork() *agentpb.ConfigureNetworkRequest {
	return &agentpb.ConfigureNetworkRequest{
		Address:    "10.0.2.15/24",
		Gateway:    "10.0.2.2",
		Mtu:        1500,
		DnsServers: []string{"10.0.2.3"},
	}
}

// backendName names the backend and accelerator.
// BackendName names the VM backend and accelerator this engine uses.
func BackendName() string {
	if ok, _ := qemu.KVMUsable(runtime.GOARCH); ok {
		return "qemu (kvm)"
	}
	return "qemu (tcg)"
}
