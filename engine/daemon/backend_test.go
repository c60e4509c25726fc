package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/terminal"
)

// The adapter serves the real engine: Docker's answers for what needs no
// VM (empty lists, missing images and containers, refused flags) come
// back from the engine's own store and manager through the API.
func TestBackendServesTheEngine(t *testing.T) {
	ctx := context.Background()
	h := testHome(t)
	d, err := Start(ctx, Config{Home: h})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(ctx)
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", h.Socket())
	}}}
	cases := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/v1.47/images/json", "", 200, "[]"},
		{"GET", "/v1.47/containers/json?all=1", "", 200, "[]"},
		{"GET", "/v1.47/images/nope/json", "", 404, "No such image: nope"},
		{"DELETE", "/v1.47/images/nope?force=1", "", 404, "No such image: nope"},
		{"GET", "/v1.47/containers/nope/json", "", 404, "No such container: nope"},
		{"POST", "/v1.47/containers/nope/start", "", 404, "No such container: nope"},
		{"POST", "/v1.47/exec/nope/start", `{"Detach":true}`, 404, "No such exec instance: nope"},
		{"POST", "/v1.47/containers/create", `{"Image":"nope:1"}`, 404, "No such image: nope:1"},
		{"POST", "/v1.47/images/prune", "", 200, `"SpaceReclaimed":0`},
		{"POST", "/v1.47/containers/prune", "", 200, `"ContainersDeleted":[]`},
		{"POST", "/berth/containers/nope/terminals", "", 404, "No such container: nope"},
	}
	for _, tc := range cases {
		req, err := http.NewRequestWithContext(ctx, tc.method, "http://berth"+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s: %d %s, want %d with %s", tc.method, tc.path, res.StatusCode, body, tc.code, tc.want)
		}
		if tc.code >= 400 {
			var e struct{ Message string }
			if err := json.Unmarshal(body, &e); err != nil || e.Message == "" {
				t.Errorf("%s %s: error body %s is not {\"message\": ...}", tc.method, tc.path, body)
			}
		}
	}
}

// The daemon serves the terminal page on loopback while it runs, and no
// longer once it has shut down.
func TestWebUIFollowsTheDaemon(t *testing.T) {
	ctx := context.Background()
	d, err := Start(ctx, Config{Home: testHome(t)})
	if err != nil {
		t.Fatal(err)
	}
	base := d.WebUI().URL()
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("web UI at %s, want 127.0.0.1", base)
	}
	res, err := http.Get(base + "/terminal/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /terminal/: %d, want the page or 503 (not built)", res.StatusCode)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := http.Get(base + "/terminal/"); err == nil {
		res.Body.Close()
		t.Errorf("the web UI still answers after shutdown: %d", res.StatusCode)
	}
	if _, err := d.Terminals().Issue(terminal.Options{Container: "x"}); !errors.Is(err, terminal.ErrStopping) {
		t.Errorf("Issue after shutdown: %v, want ErrStopping", err)
	}
}
