package daemon

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
