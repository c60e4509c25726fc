package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/internal/testenv"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// windowDriver is the Berth window in a real chromium, driven by
// assets/web/test/window.e2e.mjs: one JSON command a line, one answer.
type windowDriver struct {
	t   testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startWindowDriver(t testing.TB, url string) *windowDriver {
	t.Helper()
	webDir, err := filepath.Abs("../assets/web")
	if err != nil {
		t.Fatal(err)
	}
	node, _ := testenv.BrowserTools(t, webDir)
	d := &windowDriver{t: t, cmd: exec.Command(node, "test/window.e2e.mjs", url)}
	d.cmd.Dir = webDir
	d.cmd.Stderr = os.Stderr
	if d.in, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.out = bufio.NewScanner(stdout)
	d.out.Buffer(make([]byte, 1<<20), 1<<20)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.in.Close()
		done := make(chan error, 1)
		go func() { done <- d.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			d.cmd.Process.Kill()
			<-done
		}
	})
	return d
}

// call runs one driver command and decodes its result into out (when
// not nil); a failed command fails the test.
func (d *windowDriver) call(out any, cmd string, args ...any) {
	d.t.Helper()
	line, err := json.Marshal(append([]any{cmd}, args...))
	if err != nil {
		d.t.Fatal(err)
	}
	if _, err := fmt.Fprintf(d.in, "%s\n", line); err != nil {
		d.t.Fatalf("%s: write to the driver: %v", cmd, err)
	}
	for d.out.Scan() {
		var a struct {
			OK        bool            `json:"ok"`
			Result    json.RawMessage `json:"result"`
			Error     string          `json:"error"`
			PageError string          `json:"pageerror"`
		}
		if err := json.Unmarshal(d.out.Bytes(), &a); err != nil {
			d.t.Fatalf("%s: driver said %q: %v", cmd, d.out.Text(), err)
		}
		if a.PageError != "" {
			d.t.Errorf("page error: %s", a.PageError)
			continue
		}
		if !a.OK {
			d.t.Fatalf("%s %v: %s", cmd, args, a.Error)
		}
		if out != nil {
			if err := json.Unmarshal(a.Result, out); err != nil {
				d.t.Fatalf("%s: result %s: %v", cmd, a.Result, err)
			}
		}
		return
	}
	d.t.Fatalf("%s: the driver ended: %v", cmd, d.out.Err())
}

// TestWindow drives the Berth window in chromium against an in-process
// daemon, one QEMU micro-VM at a time: the list follows containers
// started, stopped and created from the CLI without a reload; Stop and
// Remove from the page act on the engine; logs follow; a used sign-in
// URL does not sign in again. It saves screenshots of the window to
// $BERTH_SCREENSHOTS (make screenshots: docs/), else to the test's
// temporary directory.
func TestWindow(t *testing.T) {
	// The image the page pulls: two layers, from Debian's docker-registry.
	reg := testenv.StartRegistry(t)
	pullRef := reg.Push(t, "demo/app", "1", twoLayerImage(t))
	// The example plugin, where the engine's discovery finds it: its
	// menu entry is in the palette.
	topDir, err := berthTopDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_PLUGIN_PATH", topDir)
	d, h := inProcessDaemon(t)
	dir := h.Dir
	// Folders job shares: one at create (-v), one at run time.
	dataDir, srcDir := filepath.Join(t.TempDir(), "data"), filepath.Join(t.TempDir(), "src")
	for _, f := range []string{dataDir, srcDir} {
		if err := os.Mkdir(f, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	ticker := []string{"sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done"}
	mustOK(t, "run -d web", berth(t, dir, append([]string{"run", "-d", "--name", "web", "berth/busybox:1"}, ticker...)...))

	cl, err := client.New(h.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	win, err := cl.OpenWindow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := d.WebUI().URL() + "/#token="; !strings.HasPrefix(win.URL, want) {
		t.Fatalf("window URL %q, want %s…", win.URL, want)
	}
	p := startWindowDriver(t, win.URL)
	var opened struct{ Hash, Cookie string }
	p.call(&opened, "open")
	if opened.Hash != "" || opened.Cookie != "" {
		t.Errorf("after sign-in: hash %q, document.cookie %q; want both empty (token dropped from the URL, cookie HttpOnly)", opened.Hash, opened.Cookie)
	}
	var reused string
	p.call(&reused, "reuse")
	if !strings.Contains(reused, "not valid") {
		t.Errorf("the used URL in a fresh browser: banner %q, want the token refused", reused)
	}
	running := func(ref string) bool {
		c, err := d.Engine.Containers().Get(ref)
		if err != nil {
			t.Fatalf("container %s: %v", ref, err)
		}
		return c.Snapshot().State.Status == mobycontainer.StateRunning
	}

	var cols []string
	p.call(nil, "state", "web", "^Running")
	p.call(&cols, "rowText", "web")
	if len(cols) != 8 || cols[0] != "web" || cols[2] != "berth/busybox:1" {
		t.Errorf("web's row %q: want name web, state, image berth/busybox:1, IP, ports, CPU, memory, created", cols)
	}

	t.Run("stats", func(t *testing.T) {
		var st struct {
			CPUSamples, CPUPoints, MemSamples, Streams int
			CPU, Mem, MemTitle                         string
		}
		p.call(&st, "stats", "web")
		if st.CPUSamples < 2 || st.CPUPoints != st.CPUSamples || !regexp.MustCompile(`^\d+(\.\d)?%$`).MatchString(st.CPU) {
			t.Errorf("web's CPU cell: %d samples, %d points, %q; want a sparkline of 2 or more and a percentage", st.CPUSamples, st.CPUPoints, st.CPU)
		}
		if st.MemSamples < 2 || !regexp.MustCompile(`^\d+(\.\d+)?[kMG]B$`).MatchString(st.Mem) || !strings.Contains(st.MemTitle, "of the VM's") {
			t.Errorf("web's memory cell: %d samples, %q (%q); want a sparkline and a size", st.MemSamples, st.Mem, st.MemTitle)
		}
		if st.Streams != 1 {
			t.Errorf("%d stats streams open, want 1 (web)", st.Streams)
		}
		var n int
		p.call(nil, "view", "images")
		p.call(&n, "streams")
		if n != 0 {
			t.Errorf("on the Images view: %d stats streams open, want 0", n)
		}
		p.call(nil, "view", "containers")
	})

	t.Run("logs follow and search", func(t *testing.T) {
		var f struct{ First, Now int }
		p.call(&f, "follow", "web")
		var s struct {
			Marks int
			Lines []string
		}
		p.call(&s, "search", "tick 1")
		if s.Marks == 0 || len(s.Lines) == 0 {
			t.Errorf("search tick 1: %d marks in %q", s.Marks, s.Lines)
		}
		for _, l := range s.Lines {
			if !strings.Contains(l, "tick 1") {
				t.Errorf("search tick 1 shows %q", l)
			}
		}
		p.call(nil, "search", "")
	})
	t.Run("shell", func(t *testing.T) {
		var tab struct{ URL, Title string }
		p.call(&tab, "shell", "web")
		if tab.URL != d.WebUI().URL()+"/terminal/" {
			t.Errorf("Shell opened %q, want the terminal page", tab.URL)
		}
	})
	t.Run("live from the CLI", func(t *testing.T) {
		mustOK(t, "stop web", berth(t, dir, "stop", "-t", "1", "web"))
		p.call(nil, "state", "web", "^Exited")
		mustOK(t, "start web", berth(t, dir, "start", "web"))
		p.call(nil, "state", "web", "^Running")
		mustOK(t, "create job", berth(t, dir, "create", "--name", "job", "-v", dataDir+":/data:ro", "berth/busybox:1", "true"))
		p.call(nil, "state", "job", "^Created")
	})
	// job does not run, so its run-time share is recorded, not mounted:
	// no VM for this part.
	t.Run("shared folders", func(t *testing.T) {
		type share struct {
			Target, Kind, Text, StopTitle string
			StopEnabled                   bool
		}
		var got struct {
			Hidden bool
			Title  string
			Shares []share
		}
		p.call(&got, "shares", "job", []string{"/data"})
		if got.Title != "Shared Folders — job" || len(got.Shares) != 1 {
			t.Fatalf("job's shared folders: %+v", got)
		}
		if sh := got.Shares[0]; sh.Kind != "create" || sh.Text != dataDir+" → /data (read-only)" || sh.StopEnabled || !strings.Contains(sh.StopTitle, "-v or --mount") {
			t.Errorf("the -v mount %+v: want %s → /data (read-only), made at create, Stop Sharing disabled with the reason", sh, dataDir)
		}
		// Shared from the CLI while the row is selected: the share_add
		// event alone brings it to the page.
		target := strings.TrimSpace(mustOK(t, "share add job", berth(t, dir, "share", "add", "job", srcDir)).out)
		if target != "/mnt/src" {
			t.Fatalf("berth share add printed %q, want /mnt/src", target)
		}
		p.call(&got, "shares", "job", []string{"/data", target}, false)
		for _, sh := range got.Shares {
			if sh.Target == target && (sh.Kind != "run" || sh.Text != srcDir+" → /mnt/src" || !sh.StopEnabled) {
				t.Errorf("the run-time share %+v: want %s → /mnt/src with Stop Sharing enabled", sh, srcDir)
			}
		}
		p.call(nil, "stopSharing", target)
		p.call(&got, "shares", "job", []string{"/data"}, false)
		list, err := cl.Shares(ctx, "job")
		if err != nil || len(list) != 0 {
			t.Errorf("job's run-time shares after Stop Sharing: %v, %v; want none", list, err)
		}
		var b string
		if p.call(&b, "banner"); b != "" {
			t.Errorf("banner %q after Stop Sharing", b)
		}
	})
	t.Run("stop and remove from the page", func(t *testing.T) {
		p.call(nil, "act", "web", "stop")
		p.call(nil, "state", "web", "^Exited")
		var n int
		if p.call(&n, "streams"); n != 0 {
			t.Errorf("web stopped: %d stats streams open, want 0", n)
		}
		if running("web") {
			t.Error("web still runs after Stop")
		}
		p.call(nil, "act", "job", "remove")
		p.call(nil, "gone", "job")
		if _, err := d.Engine.Containers().Get("job"); err == nil {
			t.Error("job still exists after Remove")
		}
		var b string
		p.call(&b, "banner")
		if b != "" {
			t.Errorf("banner %q after the actions", b)
		}
	})
	t.Run("palette starts", func(t *testing.T) {
		var items []string
		p.call(&items, "palette", "start web")
		if len(items) != 1 || items[0] != "Start web" {
			t.Errorf("palette for %q: %q, want [Start web]", "start web", items)
		}
		p.call(nil, "state", "web", "^Running")
	})
	t.Run("plugin entries in the palette", func(t *testing.T) {
		type item struct {
			Label, Reason        string
			Disabled, StayedOpen bool
			Labels               []string
			Posted               []struct{ T, D string }
		}
		const label = "Plugin: Container Activity (top)"
		// In a browser the entry is there, disabled with why: running a
		// plugin opens Terminal, which only the Mac app can.
		var it item
		p.call(&it, "paletteItem", "plugin", label)
		if !it.Disabled || !strings.Contains(it.Reason, "berth top") || !strings.Contains(it.Reason, "only in the Mac app") || !it.StayedOpen {
			t.Errorf("berth-top's entry in a browser: %+v; want it disabled with the reason, Enter doing nothing", it)
		}
		// In the app (its message handler mocked) choosing it asks the
		// app to run the entry, as the menu's item does.
		p.call(&it, "appPlugin", "plugin", label)
		if it.Disabled || it.StayedOpen || len(it.Posted) != 1 || it.Posted[0].T != "plugin" || it.Posted[0].D != `{"plugin":"top","args":[]}` {
			t.Errorf("berth-top's entry in the app: %+v; want it posted as {t: plugin, d: {plugin: top, args: []}}", it)
		}
	})
	t.Run("run from the palette", func(t *testing.T) {
		var items []string
		p.call(&items, "palette", "run --name db berth/busybox:1 sh -c 'while true; do echo db up; sleep 1; done'")
		if len(items) != 1 || items[0] != "Run --name db berth/busybox:1 sh -c 'while true; do echo db up; sleep 1; done'" {
			t.Errorf("palette for run: %q", items)
		}
		p.call(nil, "state", "db", "^Running")
		if !running("db") {
			t.Error("db does not run after Run from the palette")
		}
		var sel string
		p.call(&sel, "selected")
		if sel != "db" {
			t.Errorf("selected %q after Run, want the new container db", sel)
		}
		var b string
		p.call(nil, "palette", "run nope/missing:7")
		p.call(&b, "bannerMatch", "nope/missing:7")
		if !strings.Contains(b, "No such image") || !strings.Contains(b, "pull nope/missing:7") {
			t.Errorf("run of a missing image: banner %q, want No such image and how to pull it", b)
		}
		p.call(nil, "palette", "run Bad//Ref")
		p.call(&b, "bannerMatch", "^Run Bad//Ref: ")
	})
	t.Run("pull", func(t *testing.T) {
		type layer struct {
			ID, Status, Bytes string
			Value, Max        float64
		}
		var res struct {
			Done, Title, Status string
			Layers              []layer
		}
		p.call(&res, "pull", pullRef)
		if res.Done != "ok" || res.Title != "Pulled "+pullRef || res.Status != "Downloaded newer image for "+pullRef {
			t.Errorf("pull %s: %+v", pullRef, res)
		}
		if len(res.Layers) != 2 {
			t.Errorf("pull %s showed %d layers, want 2: %+v", pullRef, len(res.Layers), res.Layers)
		}
		for _, l := range res.Layers {
			if l.Status != "Pull complete" || l.Max <= 1 || l.Value != l.Max || l.Bytes == "" {
				t.Errorf("layer %+v: want Pull complete with a full bar and its size", l)
			}
		}
		var cols []string
		p.call(&cols, "rowText", pullRef)
		if len(cols) != 5 || cols[4] != "" {
			t.Errorf("the pulled image's row %q: want reference, ID, size, created, not in use", cols)
		}
		missing := reg.Host + "/demo/nope:1"
		p.call(&res, "pull", missing)
		var b string
		p.call(&b, "bannerMatch", "^Pull "+regexp.QuoteMeta(missing)+": ")
		if res.Done != "error" || res.Title != "Could not pull "+missing || res.Status == "" {
			t.Errorf("pull of a missing image: %+v, banner %q", res, b)
		}
		p.call(&res, "pull", "Bad//Ref")
		p.call(&b, "bannerMatch", "^Pull Bad//Ref: ")
		if res.Done != "error" {
			t.Errorf("pull of a bad reference: %+v", res)
		}
		p.call(nil, "dismissPulls", pullRef)
		var shown bool
		if p.call(&shown, "dismissBanner"); shown {
			t.Error("the banner stays after its × is clicked")
		}
	})
	t.Run("berth ui", func(t *testing.T) {
		cmd := exec.Command(berthBin, "ui", "--no-open")
		cmd.Env = append(os.Environ(), "BERTH_HOME="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if want := d.WebUI().URL() + "/#token="; err != nil || !strings.HasPrefix(line, want) || len(strings.TrimSpace(line)) != len(want)+64 {
			t.Errorf("berth ui printed %q (%v), want %s and 64 hex digits", line, err, want)
		}
		time.Sleep(500 * time.Millisecond)
		if cmd.ProcessState != nil {
			t.Errorf("berth ui exited before it was interrupted")
		}
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("berth ui after Ctrl-C: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "--no-open") {
			t.Errorf("berth ui did not say it does not open the browser: %q", stderr.String())
		}
	})
	t.Run("screenshots", func(t *testing.T) {
		shots := os.Getenv("BERTH_SCREENSHOTS")
		if shots == "" {
			shots = t.TempDir()
		}
		p.call(nil, "view", "containers")
		p.call(nil, "follow", "web")
		p.call(nil, "stats", "db", 6) // a line with a shape, for the picture
		p.call(nil, "stats", "web", 6)
		light, dark := filepath.Join(shots, "berth-window.png"), filepath.Join(shots, "berth-window-dark.png")
		p.call(nil, "screenshot", light, "light")
		p.call(nil, "screenshot", dark, "dark")
		p.call(nil, "view", "images")
		var cols []string
		p.call(&cols, "rowText", "berth/busybox:1")
		if len(cols) != 5 || cols[4] != "2 containers" {
			t.Errorf("image row %q: want reference, ID, size, created, 2 containers (web, db)", cols)
		}
		p.call(nil, "screenshot", filepath.Join(shots, "berth-window-images.png"), "light")
		for _, f := range []string{light, dark} {
			st, err := os.Stat(f)
			if err != nil {
				t.Errorf("screenshot: %v", err)
			} else if st.Size() < 10_000 {
				t.Errorf("screenshot %s: %d bytes, want a whole window", f, st.Size())
			}
		}
		t.Logf("screenshots in %s", shots)
	})
}

// twoLayerImage is the busybox image with a second layer of 2 MB that
// does not compress (seeded, so the same each run).
func twoLayerImage(t *testing.T) v1.Image {
	t.Helper()
	data := make([]byte, 2<<20)
	_, _ = rand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'}).Read(data)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "srv/data.bin", Mode: 0o644, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(testenv.BusyboxImage(t, map[string]string{"etc/motd": "Berth demo app\n"}), l)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
