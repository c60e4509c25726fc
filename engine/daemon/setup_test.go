package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/internal/kerneltest"
)

// TestStatusShowsKernelSetup: on a first run (no kernel on disk) the
// engine downloads the kernel PrepareKernel asks for, and the daemon's
// status carries the progress ("Setting up Berth… 50 %") while it does,
// then the kernel. The package is a FAKE one (kerneltest.FakeDeb) on a
// loopback server, named by a kernel.json choice: the real pinned
// default cannot be fetched in a test.
func TestStatusShowsKernelSetup(t *testing.T) {
	// An empty kernel cache: os.UserCacheDir is $XDG_CACHE_HOME on
	// Linux, $HOME/Library/Caches on macOS.
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("HOME", cache)
	t.Setenv(kernel.EnvKernel, "")
	const version = "6.1.0-fake-" + runtime.GOARCH
	body := kerneltest.FakeDeb(t, runtime.GOARCH, version, 1<<20)
	srv := kerneltest.NewDebServer(t, body, true)
	sum := sha256.Sum256(body)

	ctx := context.Background()
	h := testHome(t)
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := kernel.WriteChoice(h.Dir, kernel.Choice{Source: kernel.Source{URL: srv.URL(), SHA256: hex.EncodeToString(sum[:])}}); err != nil {
		t.Fatal(err)
	}
	d, err := Start(ctx, Config{Home: h})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(ctx)
	c := newClient(t, h)
	st, err := c.Status(ctx)
	if err != nil || st.Setup != "" {
		t.Fatalf("status before PrepareKernel: setup %q, %v", st.Setup, err)
	}

	d.PrepareKernel()
	waitStatus := func(what string, ok func(types.Status) bool) types.Status {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("status never showed %s: setup %q, kernel %+v", what, st.Setup, st.Kernel)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	halfway := regexp.MustCompile(`^Setting up Berth… ([1-9]|[1-9][0-9]) %$`)
	waitStatus("the download half-way", func(st types.Status) bool { return halfway.MatchString(st.Setup) })
	srv.Release()
	st = waitStatus("the kernel", func(st types.Status) bool { return st.Setup == "" && st.Kernel.Version != "" })
	if st.Kernel.Version != version || st.Kernel.Source != string(kernel.OriginChoice) || !strings.Contains(st.Kernel.Path, "sha256-") {
		t.Errorf("kernel after setup: %+v", st.Kernel)
	}
	if ks := d.KernelSetup(); ks.Phase != kernel.SetupReady || ks.Version != version {
		t.Errorf("KernelSetup after the download: %+v", ks)
	}
}
