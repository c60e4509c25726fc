package engine

import (
	"errors"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
)

// newMachine will make a Virtualization.framework VM (engine/vmm/vz).
func newMachine(cfg vmm.Config) (vmm.Machine, error) {
	return nil, errdefs.NotImplemented(errors.New("the vz backend is not wired into the engine yet"))
}

// guestNetwork: under vz's NAT the guest gets its address by DHCP, which
// guestinit does not do yet; the NIC stays down.
func guestNetwork() *agentpb.ConfigureNetworkRequest { return nil }

// BackendName names the VM backend and accelerator this engine uses.
func BackendName() string { return "vz" }
