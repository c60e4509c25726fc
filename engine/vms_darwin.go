package engine

import (
	"context"
	"log/slog"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/home"
)

// sweepOrphanVMs has nothing to do: Virtualization.framework VMs run
// inside the engine's process and die with it.
func sweepOrphanVMs(ctx context.Context, h home.Home, log *slog.Logger) {}

// guestNetwork: under vz's NAT the guest gets its address by DHCP, which
// guestinit does not do yet; the NIC stays unconfigured until the
// networking work lands.
func guestNetwork() *agentpb.ConfigureNetworkRequest { return nil }

// BackendName names the VM backend this engine uses.
func BackendName() string { return "vz" }
