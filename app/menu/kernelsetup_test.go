package menu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	kernelsetup "github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/internal/kerneltest"
)

// TestStateKernelSetup drives a real kernel.Setup (a fake kernel package
// from a local server that holds its second half back) and reports its
// states into a State as the app does: mid-download the menu shows the
// download's bytes and no "Set up kernel…"; once ready the download line
// is gone and the kernel's version is the Snapshot's; a failed download
// shows its error and offers "Set up kernel…". The State has no engine
// connection (nil API): KernelSetup is the host's report and asks
// nothing of the engine.
func TestStateKernelSetup(t *testing.T) {
	const version = "6.1.0-fake-arm64"
	body := kerneltest.FakeDeb(t, "arm64", version, 1<<20)
	srv := kerneltest.NewDebServer(t, body, true)
	sum := sha256.Sum256(body)
	setupFor := func(url string) *kernelsetup.Setup {
		home := t.TempDir()
		if err := kernelsetup.WriteChoice(home, kernelsetup.Choice{Source: kernelsetup.Source{URL: url, SHA256: hex.EncodeToString(sum[:])}}); err != nil {
			t.Fatal(err)
		}
		return kernelsetup.NewSetup(kernelsetup.Options{Home: home, CacheDir: t.TempDir(), Arch: "arm64", GOOS: "darwin", Getenv: func(string) string { return "" }})
	}
	s := NewState(nil)
	s.KernelSetup(kernelsetup.SetupState{Phase: kernelsetup.SetupIdle, Total: -1})
	select {
	case <-s.Changed():
		t.Fatal("an idle setup signalled a change")
	default:
	}

	setup := setupFor(srv.URL())
	done := make(chan error, 1)
	go func() { _, err := setup.Prepare(context.Background()); done <- err }()
	deadline := time.Now().Add(20 * time.Second)
	for st := setup.State(); st.Phase != kernelsetup.SetupDownloading || st.Done < int64(len(body)/2); st = setup.State() {
		if time.Now().After(deadline) {
			t.Fatalf("no progress to half-way: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.KernelSetup(setup.State())
	select {
	case <-s.Changed():
	default:
		t.Fatal("a download in progress did not signal a change")
	}
	kd := s.Snapshot().KernelDownload
	if kd == nil || kd.Subject != srv.URL() || kd.Current != int64(len(body)/2) || kd.Total != int64(len(body)) || kd.Err != "" {
		t.Fatalf("mid-download KernelDownload = %+v, want %d of %d bytes of %s", kd, len(body)/2, len(body), srv.URL())
	}
	// The snapshot is a copy.
	kd.Current = 0
	if s.Snapshot().KernelDownload.Current == 0 {
		t.Fatal("Snapshot shares its KernelDownload with the State")
	}
	snap := s.Snapshot()
	snap.Engine.State = EngineRunning
	snap.Kernel.Error = "no kernel yet"
	text := Render(Build(snap, time.Now()))
	if !strings.Contains(text, "Downloading kernel… 50%") || strings.Contains(text, "Set up kernel…") {
		t.Errorf("menu mid-download:\n%s", text)
	}

	srv.Release()
	if err := <-done; err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	s.KernelSetup(setup.State())
	if snap := s.Snapshot(); snap.KernelDownload != nil || snap.Kernel.Version != version || snap.Kernel.Error != "" {
		t.Fatalf("after the setup: download %+v, kernel %+v; want none and %s", snap.KernelDownload, snap.Kernel, version)
	}

	// A package that is not there: the download fails with ErrFetch.
	bad := setupFor(srv.Server.URL + "/missing.deb")
	if _, err := bad.Prepare(context.Background()); !errors.Is(err, kernelsetup.ErrFetch) {
		t.Fatalf("Prepare of a missing package: %v, want ErrFetch", err)
	}
	s.KernelSetup(bad.State())
	kd = s.Snapshot().KernelDownload
	if kd == nil || kd.Err == "" || !strings.Contains(kd.Err, "missing.deb") {
		t.Fatalf("after a failed download: %+v, want its error", kd)
	}
	snap = s.Snapshot()
	snap.Engine.State = EngineRunning
	text = Render(Build(snap, time.Now()))
	if !strings.Contains(text, "Kernel download failed: ") || !strings.Contains(text, "Set up kernel…") {
		t.Errorf("menu after a failed download:\n%s", text)
	}
}
