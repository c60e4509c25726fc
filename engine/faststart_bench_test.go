package engine_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/internal/testenv"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// BenchmarkEngineFastStart compares `run --rm IMG true` through the
// engine booted cold and restored from a fast-start template, side by
// side: each iteration runs one of each (in alternating order) on one
// engine started with WithFastStart, the cold one labelled
// container.ColdBootLabel. The template is built before the timer starts.
// It reports the medians and warm as a percentage of cold.
//
// With a spare VM (the default; BERTH_BENCH_SPARE=0 keeps none, so each
// warm start restores), each warm start claims the VM restored ahead,
// and every start waits first, untimed, until the spare is ready: the
// starts are spaced, the spare never restores during a timed start.
func BenchmarkEngineFastStart(b *testing.B) {
	reg := testenv.StartRegistry(b)
	ref := reg.Push(b, "bench/busybox", "1", testenv.BusyboxImage(b, nil))
	dir, err := os.MkdirTemp("", "bf")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	// Templates of its own: the first start builds one.
	tdir := filepath.Join(dir, "templates")
	b.Setenv(launcher.TemplateDirEnv, tdir)
	opts := []engine.Option{engine.WithFastStart(true)}
	spares := os.Getenv("BERTH_BENCH_SPARE") != "0"
	if !spares {
		opts = append(opts, engine.WithSpareIdle(0))
	}
	if os.Getenv("BERTH_BENCH_LOG") != "" {
		// The engine's debug log (each start's phases) on stderr.
		opts = append(opts, engine.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	eng, _ := startBenchEngine(b, dir, ref, opts...)
	ctx := context.Background()
	cm := eng.Containers()
	// phases of each run: start (create + VM up + process started), the
	// process's exit seen, teardown (power-off and removal).
	// agent is the container's BootTimeline.AgentReady: from the start
	// request to the guest's agent answering (restored and finished, for
	// a warm start), the VM-level comparison.
	type phases struct{ agent, start, exit, teardown time.Duration }
	var split = map[bool][]phases{}
	// settle waits until no spare VM is being restored and, with
	// spares, one is ready.
	settle := func() {
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			busy, ready := false, 0
			for _, s := range eng.FastStart().Spares {
				if s.State == "ready" {
					ready++
				} else {
					busy = true
				}
			}
			if !busy && (!spares || ready > 0) {
				return
			}
		}
		b.Logf("no spare VM ready after a minute: %+v", eng.FastStart())
	}
	run := func(cold bool) time.Duration {
		cfg := &mobycontainer.Config{Image: ref, Cmd: []string{"true"}}
		if cold {
			cfg.Labels = map[string]string{container.ColdBootLabel: "true"}
		}
		t0 := time.Now()
		c, err := cm.Create(ctx, container.CreateRequest{Config: cfg, HostConfig: &mobycontainer.HostConfig{AutoRemove: true}})
		if err != nil {
			b.Fatal(err)
		}
		if err := cm.Start(ctx, c.ID()); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		var agent time.Duration
		if bt := c.Snapshot().State.Boot; bt != nil {
			agent = bt.AgentReady
		}
		if _, err := cm.Wait(ctx, c.ID(), container.WaitNextExit); err != nil && c.Snapshot().State.Status == mobycontainer.StateRunning {
			b.Fatal(err)
		}
		t2 := time.Now()
		// Removed already (a fast teardown) is not found.
		if _, err := cm.Wait(ctx, c.ID(), container.WaitRemoved); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			b.Fatal(err)
		}
		t3 := time.Now()
		split[cold] = append(split[cold], phases{agent, t1.Sub(t0), t2.Sub(t1), t3.Sub(t2)})
		return t3.Sub(t0)
	}
	// The first two starts find no template (a layout's second cold
	// boot builds one in the background): wait for it.
	run(false)
	run(false)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if m, _ := filepath.Glob(filepath.Join(tdir, "*.state")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("no fast-start template after 3 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The first restore from a template leaves a spare VM behind.
	run(false)
	split[false] = nil // the first runs booted cold and built the template
	var colds, warms []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			settle()
			colds = append(colds, run(true))
			settle()
			warms = append(warms, run(false))
		} else {
			settle()
			warms = append(warms, run(false))
			settle()
			colds = append(colds, run(true))
		}
	}
	b.StopTimer()
	b.ReportMetric(medianMs(colds), "cold-median-ms")
	b.ReportMetric(medianMs(warms), "warm-median-ms")
	b.ReportMetric(100*medianMs(warms)/medianMs(colds), "warm-%-of-cold")
	for _, cold := range []bool{true, false} {
		var a, s, e, td []time.Duration
		for _, p := range split[cold] {
			a, s, e, td = append(a, p.agent), append(s, p.start), append(e, p.exit), append(td, p.teardown)
		}
		name := map[bool]string{true: "cold", false: "warm"}[cold]
		if len(s) > 0 {
			b.ReportMetric(medianMs(a), name+"-agent-ms")
			b.ReportMetric(medianMs(s), name+"-start-ms")
			b.ReportMetric(medianMs(e), name+"-exit-ms")
			b.ReportMetric(medianMs(td), name+"-teardown-ms")
		}
	}
	b.ReportMetric(0, "ns/op")
	b.Logf("backend %s; cold %v; warm %v", eng.Backend(), colds, warms)
}
