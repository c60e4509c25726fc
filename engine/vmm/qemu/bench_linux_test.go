//go:build linux

package qemu_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/vmm/qemu"
	"github.com/berthvm/berth/internal/kerneltest"
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
//	ready-ms     QEMU started → the host's first Ping answered
//
// ARCH-berth does the same with Berth's own kernel (make kernel-berth,
// docs/kernel.md: everything built in, an initramfs without modules)
// right after ARCH, and skips, saying so, when that kernel is not built.
//
// Run with: go test -run '^$' -bench BootToAgent -benchtime 5x ./engine/vmm/qemu/
// (BERTH_QEMU_ACCEL=kvm|tcg picks the accelerator; default: KVM when it
// works here).
func BenchmarkBootToAgent(b *testing.B) {
	arches := []string{"amd64", "arm64"}
	for _, arch := range arches {
		b.Run(arch, func(b *testing.B) {
			benchBoot(b, newGuest(b, arch, guestinitPkg, nil))
		})
		b.Run(arch+"-berth", func(b *testing.B) {
			benchBoot(b, newGuestOf(b, kerneltest.Berth(b, arch), guestinitPkg, nil))
		})
	}
}

func benchBoot(b *testing.B, g guest) {
	arch := g.arch
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
	b.Logf("%d boots; ready-ms %v; load average %s", b.N, phases["ready-ms"], loadavg())
}

// loadavg is the host's /proc/loadavg, for the record next to timings.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}

// BenchmarkBootInitcalls boots the guest b.N times with initcall_debug
// (every initcall's run time, printed on the serial console the backend
// logs to a file) and reports what the cold path spends in the kernel's
// initcalls and the module loading: the median over the boots of
//
//	initcalls        how many initcalls ran, modules' included
//	initcall-ms      their summed run time
//	module-init-ms   the summed run time of the modules' init functions
//	modules-ms       guestinit's module loading (finit_module: linking
//	                 and init), from its BootTimes
//	kernel-ms        kernel start → guestinit runs
//
// and logs the slowest initcalls by median. debian boots Debian's kernel
// and its modules; berth Berth's own (make kernel-berth), skipping,
// saying so, when that is not built. Printing every initcall makes the
// boot slower than BootToAgent's (an initcall's time includes writing
// its own messages to the emulated UART); the ranking is what matters.
//
// Run with: go test -run '^$' -bench BootInitcalls -benchtime 3x ./engine/vmm/qemu/
func BenchmarkBootInitcalls(b *testing.B) {
	arch := runtime.GOARCH
	b.Run("debian", func(b *testing.B) {
		benchInitcalls(b, newGuest(b, arch, guestinitPkg, nil))
	})
	b.Run("berth", func(b *testing.B) {
		benchInitcalls(b, newGuestOf(b, kerneltest.Berth(b, arch), guestinitPkg, nil))
	})
}

// initcallLine matches initcall_debug's report of one initcall:
// "initcall virtio_blk_init+0x0/0x1000 [virtio_blk] returned 0 after 123 usecs".
var initcallLine = regexp.MustCompile(`initcall (\S+?)(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?(?: \[(\S+)\])? returned -?\d+ after (\d+) usecs`)

// initcalls reads the initcalls a console log reports: name ("fn" or
// "fn [module]") → microseconds, and the names in the order they ran.
func initcalls(log []byte) (map[string]float64, []string) {
	us := map[string]float64{}
	var order []string
	for _, m := range initcallLine.FindAllSubmatch(log, -1) {
		name := string(m[1])
		if len(m[2]) > 0 {
			name += " [" + string(m[2]) + "]"
		}
		v, _ := strconv.ParseFloat(string(m[3]), 64)
		if _, ok := us[name]; !ok {
			order = append(order, name)
		}
		us[name] += v
	}
	return us, order
}

func benchInitcalls(b *testing.B, g guest) {
	arch := g.arch
	root := busyboxRootfs(b, arch)
	per := map[string][]float64{}
	var counts, totals, modInits, modules, kernels []float64
	for i := 0; i < b.N; i++ {
		g.root = root
		cfg := g.config(b, fmt.Sprintf("initcalls-%s-%d", arch, i))
		cfg.Ping = agentPing
		cfg.Cmdline = "initcall_debug ignore_loglevel"
		m, err := qemu.New(cfg)
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
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
		m.Kill(context.Background())
		cancel()
		log, err := os.ReadFile(cfg.ConsoleLog)
		if err != nil {
			b.Fatal(err)
		}
		us, _ := initcalls(log)
		if len(us) == 0 {
			b.Fatalf("no initcall_debug lines in the console log %s", cfg.ConsoleLog)
		}
		var total, modInit float64
		for name, v := range us {
			per[name] = append(per[name], v)
			total += v
			if strings.HasSuffix(name, "]") {
				modInit += v
			}
		}
		bt := info.GetBoot()
		counts = append(counts, float64(len(us)))
		totals = append(totals, total/1e3)
		modInits = append(modInits, modInit/1e3)
		modules = append(modules, float64(bt.GetModulesLoadedNs()-bt.GetInitStartNs())/1e6)
		kernels = append(kernels, float64(bt.GetInitStartNs())/1e6)
	}
	b.ReportMetric(median(counts), "initcalls")
	b.ReportMetric(median(totals), "initcall-ms")
	b.ReportMetric(median(modInits), "module-init-ms")
	b.ReportMetric(median(modules), "modules-ms")
	b.ReportMetric(median(kernels), "kernel-ms")
	b.ReportMetric(0, "ns/op")
	type row struct {
		name string
		ms   float64
	}
	var rows []row
	for name, v := range per {
		rows = append(rows, row{name, median(v) / 1e3})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ms > rows[j].ms })
	var sb strings.Builder
	for i, r := range rows {
		if i == 25 {
			break
		}
		fmt.Fprintf(&sb, "\n  %8.1f ms  %s", r.ms, r.name)
	}
	b.Logf("%d boots, load average %s; slowest initcalls (median):%s", b.N, loadavg(), sb.String())
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

// TestInitcallLines: BenchmarkBootInitcalls's parser reads Linux 6.1's
// initcall_debug lines, built-in and module ones, summing repeats.
func TestInitcallLines(t *testing.T) {
	log := []byte(`[    0.101010] calling  pci_subsys_init+0x0/0x7e @ 1
[    0.201010] initcall pci_subsys_init+0x0/0x7e returned 0 after 98000 usecs
[    1.300000] initcall virtio_blk_init+0x0/0x1000 [virtio_blk] returned 0 after 250 usecs
[    1.400000] initcall acpi_init+0x0/0x4a0 returned -19 after 7 usecs
[    1.500000] initcall pci_subsys_init+0x0/0x7e returned 0 after 2000 usecs
`)
	us, order := initcalls(log)
	want := map[string]float64{"pci_subsys_init": 100000, "virtio_blk_init [virtio_blk]": 250, "acpi_init": 7}
	if fmt.Sprint(us) != fmt.Sprint(want) || strings.Join(order, ",") != "pci_subsys_init,virtio_blk_init [virtio_blk],acpi_init" {
		t.Errorf("initcalls = %v %v; want %v", us, order, want)
	}
}
