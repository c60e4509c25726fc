//go:build linux

package qemu_test

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/vmm/qemu"
)

// BenchmarkBootToAgent boots the real guest (Debian kernel, the
// initramfs with guestinit and the modules, a busybox root disk) b.N
// times and reports the median of each boot phase, in milliseconds:
//
//	qemu-ms      QEMU started → QMP reports the VM running
//	prekernel-ms QEMU started → the guest kernel's clock starts (QEMU
//	             set-up, loading kernel and initramfs; estimated as the
//	             host time of the Info reply minus the guest's boot clock)
//	kernel-ms    kernel start → guestinit runs (CLOCK_BOOTTIME)
//	modules-ms   guestinit start → modules loaded
//	setup-ms     modules loaded → agent serving (mounts, rootfs, transport)
//	ping-ms      agent serving → the host's first Ping answered (the
//	             host's retries, yamux and ttrpc set-up, one round trip)
//	ready-ms     QEMU started → the host's first agent Ping answered
//
// Run with: go test -run '^$' -bench BootToAgent -benchtime 5x ./engine/vmm/qemu/
// (BERTH_QEMU_ACCEL=kvm|tcg picks the accelerator; default: KVM when it
// works here).
func BenchmarkBootToAgent(b *testing.B) {
	arches := []string{"amd64", "arm64"}
	for _, arch := range arches {
		b.Run(arch, func(b *testing.B) {
			benchBoot(b, arch)
		})
	}
}

func benchBoot(b *testing.B, arch string) {
	g := newGuest(b, arch, guestinitPkg, nil)
	root := busyboxRootfs(b, arch)
	phases := map[string][]float64{}
	for i := 0; i < b.N; i++ {
		g.root = root
		cfg := g.config(b, fmt.Sprintf("bench-%s-%d", arch, i))
		cfg.Ping = agentPing
		var opts []qemu.Option
		if arch != runtime.GOARCH {
			opts = append(opts, qemu.WithAccel(qemu.AccelTCG))
		}
		m, err := qemu.New(cfg, opts...)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
		if err := m.Start(ctx); err != nil {
			cancel()
			b.Fatal(err)
		}
		c, err := agent.Dial(ctx, m.Dialer())
		if err != nil {
			b.Fatal(err)
		}
		info, err := c.Info(ctx)
		hostNow := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		tl := m.Timeline()
		bt := info.GetBoot()
		kernelStart := hostNow.Add(-time.Duration(info.GetNowBoottimeNs()))
		ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
		phases["qemu-ms"] = append(phases["qemu-ms"], ms(tl.Running.Sub(tl.Launched)))
		phases["prekernel-ms"] = append(phases["prekernel-ms"], ms(kernelStart.Sub(tl.Launched)))
		phases["kernel-ms"] = append(phases["kernel-ms"], ms(time.Duration(bt.GetInitStartNs())))
		phases["modules-ms"] = append(phases["modules-ms"], ms(time.Duration(bt.GetModulesLoadedNs()-bt.GetInitStartNs())))
		phases["setup-ms"] = append(phases["setup-ms"], ms(time.Duration(bt.GetAgentServingNs()-bt.GetModulesLoadedNs())))
		phases["ready-ms"] = append(phases["ready-ms"], ms(tl.AgentReady.Sub(tl.Launched)))
		phases["ping-ms"] = append(phases["ping-ms"], ms(tl.AgentReady.Sub(kernelStart.Add(time.Duration(bt.GetAgentServingNs())))))
		c.Close()
		m.Kill(context.Background())
		cancel()
	}
	for name, v := range phases {
		b.ReportMetric(median(v), name)
	}
	b.ReportMetric(0, "ns/op") // the wall time per op is ready-ms plus the teardown
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
