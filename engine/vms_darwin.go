package engine

import (
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/vz"
)

// newMachine makes a Virtualization.framework VM (type-checked here, not
// yet run on a Mac).
func newMachine(cfg vmm.Config) (vmm.Machine, error) { return vz.New(cfg) }

// guestNetwork: under vz's NAT the guest gets its address by DHCP, which
// guestinit does not do yet; the NIC stays unconfigured until the
// networking work lands.
func guestNetwork() *agentpb.ConfigureNetworkRequest { return nil }

// BackendName names the VM backend this engine uses.
func BackendName() string { return "vz" }
