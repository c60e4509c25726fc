package engine

import (
	"context"
	"log/slog"

	"github.com/berthvm/berth/engine/home"
	"runtime"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/vmm/qemu"
)

// sweepOrphanVMs kills QEMU processes an engine that died left behind
// (their pid files live in the container directories).
func sweepOrphanVMs(ctx context.Context, h home.Home, log *slog.Logger) {
	stale, err := qemu.Sweep(ctx, h.Path("containers", "*", qemu.PidFileName))
	if err != nil {
		log.Warn("sweep orphaned VMs", "err", err)
	}
	for _, s := range stale {
		log.Warn("stopped a VM whose engine was gone", "vm", s.ID, "pid", s.PID, "killed", s.Killed)
	}
}

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
