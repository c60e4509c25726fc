package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/internal/testenv"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// BenchmarkEngineRSS measures the engine's memory the way a user sees it:
// the resident set of the process after 10 `run --rm IMAGE true` starts,
// with 3 containers running idle. It reports rss-MiB (VmRSS) and
// anon-MiB (RssAnon, what the Go heap and the boot preparation hold);
// the target is rss-MiB ≤ 40. The first start builds the boot image and
// initramfs into a fresh home, which is where whole-file reads used to
// leave hundreds of MiB behind.
func BenchmarkEngineRSS(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc/self/status")
	}
	img := testenv.BusyboxImage(b, nil)
	var tar bytes.Buffer
	if err := tarball.Write(name.MustParseReference("bench:latest"), img, &tar); err != nil {
		b.Fatal(err)
	}
	// Each iteration is one engine's life on a fresh home; the worst is
	// reported. (In-process engines share the test binary's heap, so one
	// iteration per process gives the cleanest number: -benchtime 1x.)
	var maxRSS, maxAnon float64
	for i := 0; i < b.N; i++ {
		dir, err := os.MkdirTemp("", "berth-rss")
		if err != nil {
			b.Fatal(err)
		}
		rss, anon := engineRSS(b, filepath.Join(dir, "h"), tar.Bytes())
		os.RemoveAll(dir)
		maxRSS, maxAnon = max(maxRSS, rss), max(maxAnon, anon)
	}
	b.ReportMetric(maxRSS, "rss-MiB")
	b.ReportMetric(maxAnon, "anon-MiB")
	b.ReportMetric(0, "ns/op")
}

// engineRSS runs the scenario on a fresh home and returns VmRSS and
// RssAnon in MiB.
func engineRSS(b *testing.B, homeDir string, imageTar []byte) (rss, anon float64) {
	ctx := context.Background()
	h, err := home.Resolve(homeDir)
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(ctx, h, engine.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	if _, err := eng.Images().Import(ctx, bytes.NewReader(imageTar)); err != nil {
		b.Fatal(err)
	}
	cm := eng.Containers()
	for i := 0; i < 10; i++ {
		c, err := cm.Create(ctx, container.CreateRequest{Config: &mobycontainer.Config{Image: "bench", Cmd: []string{"true"}}, HostConfig: &mobycontainer.HostConfig{AutoRemove: true}})
		if err != nil {
			b.Fatal(err)
		}
		if err := cm.Start(ctx, c.ID()); err != nil {
			b.Fatal(err)
		}
		if _, err := cm.Wait(ctx, c.ID(), container.WaitRemoved); err != nil {
			b.Fatal(err)
		}
	}
	var idle []string
	for i := 0; i < 3; i++ {
		c, err := cm.Create(ctx, container.CreateRequest{Config: &mobycontainer.Config{Image: "bench", Cmd: []string{"sleep", "3600"}}})
		if err != nil {
			b.Fatal(err)
		}
		if err := cm.Start(ctx, c.ID()); err != nil {
			b.Fatal(err)
		}
		idle = append(idle, c.ID())
	}
	defer func() {
		for _, id := range idle {
			if err := cm.Remove(ctx, id, true); err != nil {
				b.Error(err)
			}
		}
	}()
	return procStatusMiB(b, "VmRSS"), procStatusMiB(b, "RssAnon")
}

// procStatusMiB reads a "kB" field of /proc/self/status in MiB.
func procStatusMiB(b *testing.B, field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			b.Fatalf("%s: %v", field, err)
		}
		return kb / 1024
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}
