package main

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/app/menu"
	"github.com/berthvm/berth/engine/api/client"
)

// BenchmarkIdleCPU measures what an idle Berth costs: the CPU time of the
// process that hosts the engine and the Berth window's server (as the Mac
// app does, with the menu's State subscribed to the engine's events) over
// a quiet interval, as a percentage of one core. Each phase is measured
// side by side in one run:
//
//   - empty: the engine with no container (the baseline);
//   - 3-containers: three containers running `sleep`;
//   - 3-containers+window: the same with the Berth window open in
//     chromium (its event stream and whatever the page keeps open) and the
//     menu's State following the engine.
//
// The QEMU processes are children and are not counted: their cost is the
// guests' (and TCG's here). The target is < 1 % of a core for the last
// phase. BERTH_IDLE_SECONDS shortens the interval (default 60).
func BenchmarkIdleCPU(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("boots QEMU micro-VMs: Linux only")
	}
	interval := 60 * time.Second
	if s := os.Getenv("BERTH_IDLE_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("BERTH_IDLE_SECONDS=%q: want a positive number of seconds", s)
		}
		interval = time.Duration(n) * time.Second
	}
	_, h := inProcessDaemon(b)
	dir := h.Dir
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// One run measures every phase (make bench passes -benchtime 1x):
	// each phase adds to the engine the one before left.
	settle := 5 * time.Second
	time.Sleep(settle)
	b.ReportMetric(cpuPercent(b, interval), "empty-%core")

	for i := 0; i < 3; i++ {
		mustOK(b, "run -d idle"+strconv.Itoa(i), berth(b, dir, "run", "-d", "--name", "idle"+strconv.Itoa(i), "berth/busybox:1", "sleep", "3600"))
	}
	time.Sleep(settle)
	b.ReportMetric(cpuPercent(b, interval), "3-containers-%core")

	cl, err := client.New(h.Socket())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	state := menu.NewState(cl)
	go func() { _ = state.Run(ctx) }()
	win, err := cl.OpenWindow(ctx)
	if err != nil {
		b.Fatal(err)
	}
	p := startWindowDriver(b, win.URL)
	p.call(nil, "open")
	p.call(nil, "state", "idle2", "^Running")
	time.Sleep(settle)
	if n := len(state.Snapshot().Containers); n != 3 {
		b.Fatalf("the menu's State sees %d containers, want 3", n)
	}
	b.ReportMetric(cpuPercent(b, interval), "3-containers+window-%core")
	b.ReportMetric(0, "ns/op")
}

// cpuPercent sleeps for d and returns this process's CPU time (user and
// system, all threads; not its children) over it, as a percentage of one
// core.
func cpuPercent(b testing.TB, d time.Duration) float64 {
	b.Helper()
	before, t0 := rusageCPU(b), time.Now()
	time.Sleep(d)
	used, wall := rusageCPU(b)-before, time.Since(t0)
	return 100 * used.Seconds() / wall.Seconds()
}

// rusageCPU is this process's user plus system CPU time so far.
func rusageCPU(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
