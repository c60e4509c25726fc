package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/app/appwindow"
	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/engine/webui"
	"github.com/berthvm/berth/internal/testenv"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// httpTask is an appwindow.Task that answers an HTTP request: what the
// app's WKURLSchemeHandler does with a scheme task, here for chromium.
type httpTask struct {
	mu sync.Mutex
	w  http.ResponseWriter
}

func (t *httpTask) Respond(status int, header map[string]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range header {
		t.w.Header().Set(k, v)
	}
	t.w.WriteHeader(status)
}

func (t *httpTask) Data(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w.Write(b)
	http.NewResponseController(t.w).Flush()
}

// Finish has nothing to do: the response ends when Serve returns.
func (t *httpTask) Finish() {}

func (t *httpTask) Fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	http.Error(t.w, err.Error(), http.StatusBadGateway)
}

// TestAppWindowPath loads the real Berth window page in chromium over the
// path the macOS app's web view takes — each request made an
// appwindow.NewRequest for berth://window/…, answered by appwindow.Serve
// from webui.EmbeddedWindow over the real engine's API handler (here
// carried over a loopback HTTP server, since chromium has no berth:
// scheme handler) — with no sign-in: the image is listed, and a
// container created from the CLI appears live, through the streamed
// /events. No VM boots: the container is only created.
func TestAppWindowPath(t *testing.T) {
	img := testenv.BusyboxImage(t, nil)
	t.Setenv(launcher.GuestinitEnv, filepath.Join(filepath.Dir(berthBin), "guestinit-linux-"+runtime.GOARCH))
	dir := shortHome(t)
	h, err := home.Resolve(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Config{Home: h, LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := d.Shutdown(sctx); err != nil {
			t.Errorf("daemon shutdown: %v", err)
		}
	}()
	var tar bytes.Buffer
	if err := tarball.Write(name.MustParseReference("berth/busybox:1"), img, &tar); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Engine.Images().Import(ctx, &tar); err != nil {
		t.Fatal(err)
	}

	win := webui.EmbeddedWindow(d.APIHandler(), nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		header := map[string]string{}
		for k := range r.Header {
			header[k] = r.Header.Get(k)
		}
		req, err := appwindow.NewRequest(r.Context(), r.Method, appwindow.PageURL+r.URL.RequestURI()[1:], header, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		task := &httpTask{w: w}
		appwindow.Serve(win, req, task)
	}))
	// Closed after the browser (cleanups run last-in first-out): Close
	// waits for the page's open /events stream.
	t.Cleanup(srv.Close)

	p := startWindowDriver(t, srv.URL+"/")
	p.call(nil, "open")
	p.call(nil, "view", "images")
	var cols []string
	p.call(&cols, "rowText", "berth/busybox:1")
	if len(cols) < 1 || cols[0] != "berth/busybox:1" {
		t.Errorf("image row over the in-app path: %q", cols)
	}
	p.call(nil, "view", "containers")
	mustOK(t, "create", berth(t, dir, "create", "--name", "made-later", "berth/busybox:1", "true"))
	p.call(nil, "state", "made-later", "^Created")
	c, err := d.Engine.Containers().Get("made-later")
	if err != nil {
		t.Fatal(err)
	}
	id := c.ID()

	// A drop on the window: the app asks the page, with
	// appwindow.RowAtScript, which container row is under the drop
	// point; appwindow.DropTarget reads the answer.
	var at struct{ X, Y float64 }
	p.call(&at, "rowCenter", "made-later")
	var answer string
	p.call(&answer, "eval", appwindow.RowAtScript(at.X, at.Y))
	if got := appwindow.DropTarget(answer); got != id {
		t.Errorf("drop on made-later's row at (%v, %v): page answered %q (target %q), want its ID %s", at.X, at.Y, answer, got, id)
	}
	p.call(&answer, "eval", appwindow.RowAtScript(at.X, 2))
	if answer != "" {
		t.Errorf("drop above the table at (%v, 2): page answered %q, want no row", at.X, answer)
	}

	// Shell in the app: the page posts {t: "shell", d: ID} to the app's
	// "berth" message handler (a mock in chromium) instead of opening a
	// tab, and appwindow.Receive routes it to OpenShell.
	var shell struct {
		Posted []struct{ T, D string }
		Tabs   int
	}
	p.call(&shell, "appShell", "made-later")
	if len(shell.Posted) != 1 || shell.Tabs != 0 {
		t.Fatalf("Shell with the app's handler: posted %+v, opened %d tabs; want one message and no tab", shell.Posted, shell.Tabs)
	}
	var opened []string
	hooks := appwindow.Hooks{OpenShell: func(id string) { opened = append(opened, id) }}
	if err := appwindow.Receive(shell.Posted[0].T, shell.Posted[0].D, hooks, nil); err != nil || len(opened) != 1 || opened[0] != id {
		t.Errorf("the page's message %+v: Receive %v, opened %v; want a shell on %s", shell.Posted[0], err, opened, id)
	}
}
