package daemon

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/plugin"
)

func TestServicePluginStartsAndStopsWithDaemon(t *testing.T) {
	h := testHome(t)
	dir := filepath.Join(h.Dir, "plugins")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	marks := filepath.Join(t.TempDir(), "marks")
	script := `#!/bin/sh
echo "started $BERTH_SOCKET" >> ` + marks + `
echo "hello from the service"
trap 'echo stopped >> ` + marks + `; exit 0' TERM
while :; do sleep 0.05; done
`
	if err := os.WriteFile(filepath.Join(dir, "berth-svc"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "berth-svc.json"), []byte(`{"description":"test service","kind":"service"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	d, err := Start(ctx, Config{Home: h, LogOutput: io.Discard, Plugins: PluginOptions{Grace: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("start took %s", el)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(marks)
		if strings.Contains(string(b), "started "+h.Socket()) {
			break
		}
		if time.Now().After(deadline) {
			d.Shutdown(ctx)
			t.Fatalf("service plugin never started; marks %q", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(marks); !strings.Contains(string(b), "stopped") {
		t.Errorf("the plugin was not stopped with SIGTERM at shutdown: marks %q", b)
	}
	if b, _ := os.ReadFile(h.Path("logs", "plugins", "svc.log")); !strings.Contains(string(b), "hello from the service") {
		t.Errorf("plugin log = %q", b)
	}
}

// TestPluginMenuEndpoint: GET /berth/plugins/menu answers the menu
// entries of the CLI plugins the daemon's discovery finds, in order, and
// none of a service plugin's; [] when there are none.
func TestPluginMenuEndpoint(t *testing.T) {
	h := testHome(t)
	dir := filepath.Join(h.Dir, "plugins")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	get := func() string {
		d, err := Start(ctx, Config{Home: h, LogOutput: io.Discard, Plugins: PluginOptions{Disabled: true, Discovery: plugin.Config{HomeDir: h.Dir}}})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Shutdown(ctx)
		rec := httptest.NewRecorder()
		d.APIHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1.47/berth/plugins/menu", nil))
		if rec.Code != 200 {
			t.Fatalf("GET /berth/plugins/menu: %d %s", rec.Code, rec.Body)
		}
		return strings.TrimSpace(rec.Body.String())
	}
	if got := get(); got != "[]" {
		t.Errorf("no plugins: %s, want []", got)
	}
	write := func(name, md string) {
		if err := os.WriteFile(filepath.Join(dir, "berth-"+name), []byte("#!/bin/sh\nexit 0\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "berth-"+name+".json"), []byte(md), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("hello", `{"description":"x","menu":[{"title":"Say Hello","args":["--to","the world"]},{"title":"Wave"}]}`)
	write("svc", `{"description":"x","kind":"service","menu":[{"title":"Service Thing"}]}`)
	want := `[{"plugin":"hello","title":"Say Hello","args":["--to","the world"]},{"plugin":"hello","title":"Wave","args":[]}]`
	if got := get(); got != want {
		t.Errorf("GET /berth/plugins/menu = %s, want %s", got, want)
	}
}
