package kernel_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/internal/kerneltest"
)

// TestSetupFetchesWithProgress: a Setup whose kernel (here a kernel.json
// choice naming the FAKE package) is not on disk downloads it, shows the
// download's progress mid-way ("Setting up Berth… 50 %"), verifies and
// unpacks it, and ends ready; two Prepares at once download it once, and
// a later one downloads nothing.
func TestSetupFetchesWithProgress(t *testing.T) {
	const version = "6.1.0-fake-arm64"
	body := kerneltest.FakeDeb(t, "arm64", version, 1<<20)
	srv := kerneltest.NewDebServer(t, body, true)
	home, cache := t.TempDir(), t.TempDir()
	if err := kernel.WriteChoice(home, kernel.Choice{Source: kernel.Source{URL: srv.URL(), SHA256: sha256Hex(body)}}); err != nil {
		t.Fatal(err)
	}
	s := kernel.NewSetup(kernel.Options{Home: home, CacheDir: cache, Arch: "arm64", GOOS: "darwin", Getenv: func(string) string { return "" }})
	if st := s.State(); st.Phase != kernel.SetupIdle || st.String() != "Starting Berth…" {
		t.Errorf("new Setup: %+v %q", st, st)
	}

	ctx := context.Background()
	type result struct {
		k   *kernel.Kernel
		err error
	}
	results := make(chan result, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := s.Prepare(ctx)
			results <- result{k, err}
		}()
	}

	// Mid-download: the server holds the second half back.
	deadline := time.Now().Add(20 * time.Second)
	var mid kernel.SetupState
	for {
		mid = s.State()
		if mid.Phase == kernel.SetupDownloading && mid.Done >= int64(len(body)/2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress to half-way: %+v", mid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if mid.Total != int64(len(body)) || mid.Done != int64(len(body)/2) || mid.URL != srv.URL() {
		t.Errorf("mid-download state %+v, want %d of %d", mid, len(body)/2, len(body))
	}
	pct := int(int64(len(body)/2) * 100 / int64(len(body)))
	want := fmt.Sprintf("Setting up Berth… %d %%", pct)
	if mid.String() != want || mid.Percent() != pct || pct <= 0 || pct >= 100 {
		t.Errorf("mid-download: %q (%d %%), want %q", mid, mid.Percent(), want)
	}
	srv.Release()
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || r.k.Version != version || r.k.Arch != "arm64" || r.k.ModulesDir == "" || r.k.Origin != kernel.OriginChoice {
			t.Fatalf("Prepare = %v (modules %q), %v", r.k, r.k.ModulesDir, r.err)
		}
	}
	if n := srv.Requests(); n != 1 {
		t.Errorf("two Prepares made %d downloads, want 1", n)
	}
	if st := s.State(); st.Phase != kernel.SetupReady || st.Version != version || st.String() != "Berth is ready" {
		t.Errorf("after the download: %+v %q", st, st)
	}
	if _, err := s.Prepare(ctx); err != nil || srv.Requests() != 1 || s.State().Phase != kernel.SetupReady {
		t.Errorf("Prepare with the kernel on disk: %v, %d requests, %+v", err, srv.Requests(), s.State())
	}
}

// TestSetupFailures: a download that fails says what to do, keeps its
// errdefs class and leaves the Setup failed; so does a package that does
// not match its SHA-256. The pinned default, fetched over a FAKE network
// that is down (a RoundTripper that refuses every request), names its
// real URL.
func TestSetupFailures(t *testing.T) {
	body := kerneltest.FakeDeb(t, "arm64", "6.1.0-fake-arm64", 4096)
	srv := kerneltest.NewDebServer(t, body, false)
	ctx := context.Background()
	setup := func(url, sum string, client *http.Client) *kernel.Setup {
		home := ""
		if url != "" {
			home = t.TempDir()
			if err := kernel.WriteChoice(home, kernel.Choice{Source: kernel.Source{URL: url, SHA256: sum}}); err != nil {
				t.Fatal(err)
			}
		}
		return kernel.NewSetup(kernel.Options{Home: home, CacheDir: t.TempDir(), Arch: "arm64", GOOS: "darwin", Client: client, Getenv: func(string) string { return "" }})
	}
	check := func(name string, s *kernel.Setup, class error, says ...string) {
		t.Helper()
		_, err := s.Prepare(ctx)
		if !errors.Is(err, kernel.ErrFetch) || !errors.Is(err, class) {
			t.Errorf("%s: Prepare = %v, want an ErrFetch of class %v", name, err, class)
			return
		}
		for _, w := range append(says, "berth system kernel set --url URL --sha256 HEX", "berth system kernel set --path DIR") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error does not say %q: %v", name, w, err)
			}
		}
		st := s.State()
		if st.Phase != kernel.SetupFailed || !errors.Is(st.Err, kernel.ErrFetch) || !strings.HasPrefix(st.String(), "Berth could not set up its Linux kernel: ") {
			t.Errorf("%s: state %+v %q", name, st, st)
		}
	}

	check("404", setup(srv.Server.URL+"/missing.deb", sha256Hex(body), nil), errdefs.ErrUnavailable, "404", "check that this computer is online")
	check("wrong sha256", setup(srv.URL(), strings.Repeat("ab", 32), nil), kernel.ErrChecksum, "is not the pinned one")

	offline := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return nil, errors.New("fake network: unreachable")
	})}
	def, err := kernel.DefaultSource("arm64")
	if err != nil {
		t.Fatal(err)
	}
	check("offline, pinned default", setup("", "", offline), errdefs.ErrUnavailable, def.URL, "fake network: unreachable", "quit and reopen Berth")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestDefaultKernelPinnedForBothMacs: the pinned default covers the
// guests of both Mac architectures (arm64 on Apple silicon, amd64 on
// Intel), each a Debian linux-image package of its own architecture with
// a SHA-256.
func TestDefaultKernelPinnedForBothMacs(t *testing.T) {
	for _, arch := range []string{"arm64", "amd64"} {
		src, err := kernel.DefaultSource(arch)
		if err != nil {
			t.Errorf("DefaultSource(%s): %v", arch, err)
			continue
		}
		if !strings.HasPrefix(src.URL, "https://") || !strings.Contains(src.URL, "/linux-image-") || !strings.HasSuffix(src.URL, "_"+arch+".deb") ||
			len(src.SHA256) != 64 || !strings.HasSuffix(src.Version, "-"+arch) {
			t.Errorf("DefaultSource(%s) = %+v", arch, src)
		}
	}
	if _, err := kernel.DefaultSource("riscv64"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("DefaultSource(riscv64) = %v, want not found", err)
	}
}
