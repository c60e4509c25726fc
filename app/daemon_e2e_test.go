package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/internal/testenv"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// inProcessDaemon starts a daemon in this process, as the Mac app hosts
// one, on a fresh short home (returned with it), with the busybox test
// image loaded as berth/busybox:1 and the built guestinit. It shuts down
// when the test ends, after the cleanups registered later (a browser's,
// a server's) have run.
func inProcessDaemon(t testing.TB) (*daemon.Daemon, home.Home) {
	t.Helper()
	img := testenv.BusyboxImage(t, nil)
	t.Setenv(launcher.GuestinitEnv, filepath.Join(filepath.Dir(berthBin), "guestinit-linux-"+runtime.GOARCH))
	h, err := home.Resolve(shortHome(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Config{Home: h, LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := d.Shutdown(sctx); err != nil {
			t.Errorf("daemon shutdown: %v", err)
		}
	})
	var tar bytes.Buffer
	if err := tarball.Write(name.MustParseReference("berth/busybox:1"), img, &tar); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Engine.Images().Import(ctx, &tar); err != nil {
		t.Fatal(err)
	}
	return d, h
}
