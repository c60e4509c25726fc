package engine_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/internal/kerneltest"
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

// TestCloseStopsKernelDownload: a first-run kernel download PrepareKernel
// started (here of a FAKE package from a loopback server that stalls
// half-way) ends when Close returns, and KernelSetup shows it mid-way
// before.
func TestCloseStopsKernelDownload(t *testing.T) {
	// Checked last, after the loopback server's own cleanup.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	cache := t.TempDir() // an empty kernel cache (os.UserCacheDir)
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("HOME", cache)
	t.Setenv(kernel.EnvKernel, "")
	body := kerneltest.FakeDeb(t, runtime.GOARCH, "6.1.0-fake", 1<<20)
	srv := kerneltest.NewDebServer(t, body, true) // never released
	h, err := home.Resolve(filepath.Join(t.TempDir(), "h"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ensure(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if err := kernel.WriteChoice(h.Dir, kernel.Choice{Source: kernel.Source{URL: srv.URL(), SHA256: hex.EncodeToString(sum[:])}}); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(context.Background(), h, engine.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	eng.PrepareKernel()
	deadline := time.Now().Add(20 * time.Second)
	for st := eng.KernelSetup(); st.Phase != kernel.SetupDownloading || st.Done == 0; st = eng.KernelSetup() {
		if time.Now().After(deadline) {
			t.Fatalf("no download under way: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if st := eng.KernelSetup(); st.Phase != kernel.SetupFailed || !errors.Is(st.Err, context.Canceled) {
		t.Errorf("KernelSetup after Close: %+v", st)
	}
}
