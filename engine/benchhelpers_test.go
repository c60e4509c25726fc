package engine_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/home"
)

// startBenchEngine starts an engine on a home under dir (quiet logger,
// plus opts), closed when tb ends, with ref pulled.
func startBenchEngine(tb testing.TB, dir, ref string, opts ...engine.Option) (*engine.Engine, home.Home) {
	tb.Helper()
	h, err := home.Resolve(filepath.Join(dir, "h"))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	opts = append([]engine.Option{engine.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	eng, err := engine.New(ctx, h, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { eng.Close() })
	if _, err := eng.Images().Pull(ctx, ref); err != nil {
		tb.Fatal(err)
	}
	return eng, h
}

// median is the middle of d (the upper one for an even count).
func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// medianMs is median in milliseconds, for ReportMetric.
func medianMs(d []time.Duration) float64 {
	return float64(median(d)) / float64(time.Millisecond)
}
