package engine_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/container"
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
