package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/internal/kerneltest"
	"github.com/berthvm/berth/internal/testenv"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// BenchmarkRunRmTrue measures `run --rm IMG true` through the engine,
// split into create (rootfs clone), boot (VM start to the process
// running), exec (process run to exit seen) and teardown (power-off and
// removal). The base rootfs is built before the timer starts.
func BenchmarkRunRmTrue(b *testing.B) {
	reg := testenv.StartRegistry(b)
	ref := reg.Push(b, "bench/busybox", "1", testenv.BusyboxImage(b, nil))
	dir, err := os.MkdirTemp("", "bb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	eng, _ := startBenchEngine(b, dir, ref)
	ctx := context.Background()
	cm := eng.Containers()
	warm, err := cm.Create(ctx, container.CreateRequest{Config: &mobycontainer.Config{Image: ref, Cmd: []string{"true"}}})
	if err != nil {
		b.Fatal(err)
	}
	cm.Remove(ctx, warm.ID(), true)
	var creates, boots, execs, teardowns, totals []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c, err := cm.Create(ctx, container.CreateRequest{Config: &mobycontainer.Config{Image: ref, Cmd: []string{"true"}}, HostConfig: &mobycontainer.HostConfig{AutoRemove: true}})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := cm.Start(ctx, c.ID()); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := cm.Wait(ctx, c.ID(), container.WaitNextExit); err != nil && c.Snapshot().State.Status == mobycontainer.StateRunning {
			b.Fatal(err)
		}
		t3 := time.Now()
		if _, err := cm.Wait(ctx, c.ID(), container.WaitRemoved); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		creates, boots, execs, teardowns, totals = append(creates, t1.Sub(t0)), append(boots, t2.Sub(t1)), append(execs, t3.Sub(t2)), append(teardowns, t4.Sub(t3)), append(totals, t4.Sub(t0))
	}
	b.StopTimer()
	b.ReportMetric(medianMs(creates), "create-ms")
	b.ReportMetric(medianMs(boots), "boot-ms")
	b.ReportMetric(medianMs(execs), "exec-ms")
	b.ReportMetric(medianMs(teardowns), "teardown-ms")
	b.ReportMetric(medianMs(totals), "median-total-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("backend %s", eng.Backend())
}

// BenchmarkRunColdKernels compares cold `run --rm IMG true` through the
// engine with Debian's kernel (the default) and with Berth's own
// (make kernel-berth, docs/kernel.md: everything built in, no modules),
// side by side: two engines, fast start off, the second one's home
// choosing the Berth kernel in kernel.json; each iteration runs one
// container on each, in alternating order. It reports per kernel the
// medians of agent-ms (start request → the guest's agent answered),
// guest-kernel-ms (guest kernel start → guestinit runs), modules-ms
// (guestinit's module loading) and total-ms (create to removed). It
// skips, saying so, when the Berth kernel is not built.
//
// Run with: go test -run '^$' -bench RunColdKernels -benchtime 7x ./engine/
func BenchmarkRunColdKernels(b *testing.B) {
	berth := kerneltest.Berth(b, runtime.GOARCH)
	reg := testenv.StartRegistry(b)
	ref := reg.Push(b, "bench/busybox", "1", testenv.BusyboxImage(b, nil))
	dir, err := os.MkdirTemp("", "bk")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	names := []string{"debian", "berth"}
	engs := map[string]*engine.Engine{}
	for _, name := range names {
		h, err := home.Resolve(filepath.Join(dir, name, "h"))
		if err != nil {
			b.Fatal(err)
		}
		if name == "berth" {
			if err := h.Ensure(); err != nil {
				b.Fatal(err)
			}
			if err := kernel.WriteChoice(h.Dir, kernel.Choice{Path: filepath.Dir(filepath.Dir(berth.Path))}); err != nil {
				b.Fatal(err)
			}
		}
		engs[name], _ = startBenchEngine(b, filepath.Join(dir, name), ref, engine.WithFastStart(false))
	}
	ctx := context.Background()
	type sample struct{ agent, guestKernel, modules, total time.Duration }
	samples := map[string][]sample{}
	run := func(name string) {
		cm := engs[name].Containers()
		t0 := time.Now()
		c, err := cm.Create(ctx, container.CreateRequest{Config: &mobycontainer.Config{Image: ref, Cmd: []string{"true"}}, HostConfig: &mobycontainer.HostConfig{AutoRemove: true}})
		if err != nil {
			b.Fatal(err)
		}
		if err := cm.Start(ctx, c.ID()); err != nil {
			b.Fatal(err)
		}
		bt := c.Snapshot().State.Boot
		if bt == nil {
			b.Fatalf("%s: container %s has no boot timeline", name, c.ID())
		}
		if _, err := cm.Wait(ctx, c.ID(), container.WaitRemoved); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			b.Fatal(err)
		}
		samples[name] = append(samples[name], sample{bt.AgentReady, bt.GuestInitStart, bt.GuestModulesLoaded - bt.GuestInitStart, time.Since(t0)})
	}
	// One of each before the timer: the first boot of a kernel builds
	// its boot image and initramfs.
	run("debian")
	run("berth")
	samples = map[string][]sample{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			run("debian")
			run("berth")
		} else {
			run("berth")
			run("debian")
		}
	}
	b.StopTimer()
	for _, name := range names {
		var a, k, m, t []time.Duration
		for _, s := range samples[name] {
			a, k, m, t = append(a, s.agent), append(k, s.guestKernel), append(m, s.modules), append(t, s.total)
		}
		b.ReportMetric(medianMs(a), name+"-agent-ms")
		b.ReportMetric(medianMs(k), name+"-guest-kernel-ms")
		b.ReportMetric(medianMs(m), name+"-modules-ms")
		b.ReportMetric(medianMs(t), name+"-total-ms")
		b.Logf("%s: agent %v total %v", name, a, t)
	}
	b.ReportMetric(0, "ns/op")
	la, _ := os.ReadFile("/proc/loadavg")
	b.Logf("backend %s; Berth kernel %s; load average %s", engs["debian"].Backend(), berth, strings.TrimSpace(string(la)))
}
