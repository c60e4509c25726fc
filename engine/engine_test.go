package engine_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/internal/testenv"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"go.uber.org/goleak"
)

// TestCloseEndsEveryGoroutine: whatever the engine started — here the
// base rootfs prune an image removal sets off — has ended when Close
// returns.
func TestCloseEndsEveryGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	img := testenv.BusyboxImage(t, nil)
	var tar bytes.Buffer
	if err := tarball.Write(name.MustParseReference("leak:latest"), img, &tar); err != nil {
		t.Fatal(err)
	}
	h, err := home.Resolve(filepath.Join(t.TempDir(), "h"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eng, err := engine.New(ctx, h, engine.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Images().Import(ctx, &tar); err != nil {
		t.Fatal(err)
	}
	// Removing the image sets off a prune of base root filesystems.
	if _, err := eng.Images().Remove(ctx, "leak:latest"); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
}
