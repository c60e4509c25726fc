package engine_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/home"
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
	defer os.RemoveAll(dir)
	h, err := home.Resolve(filepath.Join(dir, "h"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	eng, err := engine.New(ctx, h, engine.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	if _, err := eng.Images().Pull(ctx, ref); err != nil {
		b.Fatal(err)
	}
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
	ms := func(d []time.Duration) float64 {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return float64(s[len(s)/2]) / 1e6
	}
	b.ReportMetric(ms(creates), "create-ms")
	b.ReportMetric(ms(boots), "boot-ms")
	b.ReportMetric(ms(execs), "exec-ms")
	b.ReportMetric(ms(teardowns), "teardown-ms")
	b.ReportMetric(ms(totals), "median-total-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("backend %s", eng.Backend())
}
