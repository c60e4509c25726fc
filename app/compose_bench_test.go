package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"
)

// BenchmarkComposeUp measures `docker compose up -d --wait` of
// TestComposeApp's two-service application (web and db, one VM each; web
// waits for db's health check) beside the sum of its two containers'
// start times, each started alone with `docker start` (VM boot to the
// process running). The difference is what compose's ordering costs:
// db's health check (every second) before web may start, and the calls
// compose makes. Each run starts from nothing (down -v); the image is
// pulled first. Medians over BERTH_COMPOSE_RUNS runs (default 3) in one
// benchmark op (make bench passes -benchtime 1x).
func BenchmarkComposeUp(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("boots QEMU micro-VMs: Linux only")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		b.Fatal(err)
	}
	testenv.RequireTool(b, filepath.Join(home, ".docker", "cli-plugins", "docker-compose"), "docker compose (make compose)")
	runs := 3
	if s := os.Getenv("BERTH_COMPOSE_RUNS"); s != "" {
		if runs, err = strconv.Atoi(s); err != nil || runs <= 0 {
			b.Fatalf("BERTH_COMPOSE_RUNS=%q: want a positive number", s)
		}
	}
	reg := testenv.StartRegistry(b)
	ref := reg.Push(b, "test/shop", "1", testenv.BusyboxImage(b, composeFiles))
	_, h := inProcessDaemon(b)
	bh := h.Dir
	file := filepath.Join(b.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(composeApp, ref, freePort(b))), 0o644); err != nil {
		b.Fatal(err)
	}
	compose := func(args ...string) result {
		return berth(b, bh, append([]string{"compose", "-f", file, "-p", "shop"}, args...)...)
	}
	mustOK(b, "pull", berth(b, bh, "pull", ref))

	var ups, dbs, webs, sums []float64
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		mustOK(b, "compose up -d --wait", compose("up", "-d", "--wait"))
		up := time.Since(t0)
		mustOK(b, "compose stop", compose("stop"))
		t0 = time.Now()
		mustOK(b, "docker start db", docker(b, bh, "start", "shop-db-1"))
		db := time.Since(t0)
		t0 = time.Now()
		mustOK(b, "docker start web", docker(b, bh, "start", "shop-web-1"))
		web := time.Since(t0)
		mustOK(b, "compose down -v", compose("down", "-v"))
		b.Logf("run %d: up -d --wait %v; docker start db %v + web %v = %v", i+1, up.Round(time.Millisecond),
			db.Round(time.Millisecond), web.Round(time.Millisecond), (db + web).Round(time.Millisecond))
		ups = append(ups, ms(up))
		dbs = append(dbs, ms(db))
		webs = append(webs, ms(web))
		sums = append(sums, ms(db+web))
	}
	b.ReportMetric(median(ups), "up-wait-ms")
	b.ReportMetric(median(sums), "starts-sum-ms")
	b.ReportMetric(median(dbs), "start-db-ms")
	b.ReportMetric(median(webs), "start-web-ms")
	b.ReportMetric(0, "ns/op")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
