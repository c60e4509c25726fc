package plugin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePlugin writes an executable shell script berth-<name> in dir, and
// its metadata file when md is not empty.
func writePlugin(t *testing.T, dir, name, script, md string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, Prefix+name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if md != "" {
		if err := os.WriteFile(path+".json", []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func privateDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func skippedFor(r Result, name string) string {
	for _, s := range r.Skipped {
		if s.Name == name {
			return s.Reason
		}
	}
	return ""
}

func TestDiscoverOrderAndPrecedence(t *testing.T) {
	home, pp1, pp2, path := privateDir(t), privateDir(t), privateDir(t), privateDir(t)
	writePlugin(t, Dir(home), "a", "", `{"description":"a from home"}`)
	writePlugin(t, pp1, "a", "", `{"description":"a from plugin path"}`)
	writePlugin(t, pp1, "b", "", `{"description":"b from plugin path 1"}`)
	writePlugin(t, pp2, "b", "", `{"description":"b from plugin path 2"}`)
	writePlugin(t, pp2, "c", "", `{"description":"c from plugin path 2"}`)
	writePlugin(t, path, "c", "", `{"description":"c from PATH"}`)
	writePlugin(t, path, "d", `[ "$1" = berth-plugin-metadata ] && echo '{"description":"d asked","kind":"service"}'`, "")
	cfg := Config{HomeDir: home, PluginPath: pp1 + string(os.PathListSeparator) + pp2, Path: path}
	r := Discover(context.Background(), cfg)
	want := map[string]string{"a": "a from home", "b": "b from plugin path 1", "c": "c from plugin path 2", "d": "d asked"}
	if len(r.Plugins) != len(want) {
		t.Fatalf("plugins = %+v, want %d", r.Plugins, len(want))
	}
	for name, desc := range want {
		p, ok := r.Get(name)
		if !ok || p.Description != desc {
			t.Errorf("plugin %s = %+v (found %v), want description %q", name, p, ok, desc)
		}
	}
	if p, _ := r.Get("a"); p.Source != SourceHome || p.Path != filepath.Join(Dir(home), "berth-a") {
		t.Errorf("a: source %s path %s", p.Source, p.Path)
	}
	if p, _ := r.Get("c"); p.Source != SourcePath {
		t.Errorf("c: source %s, want %s", p.Source, SourcePath)
	}
	if p, _ := r.Get("d"); p.Kind != KindService || p.Lifecycle != LifecycleEngine || p.Source != SourceEnv {
		t.Errorf("d = %+v, want a service with lifecycle engine from PATH", p)
	}
	p, _, ok := Find(context.Background(), cfg, "b")
	if !ok || p.Description != "b from plugin path 1" {
		t.Errorf("Find(b) = %+v, %v", p, ok)
	}
	if _, _, ok := Find(context.Background(), cfg, "zz"); ok {
		t.Error("Find(zz) found a plugin that does not exist")
	}
}

func TestDiscoverSkips(t *testing.T) {
	dir := privateDir(t)
	writePlugin(t, dir, "ok", "", `{"description":"fine"}`)
	noexec := writePlugin(t, dir, "noexec", "", `{"description":"x"}`)
	os.Chmod(noexec, 0o644)
	ww := writePlugin(t, dir, "worldw", "", `{"description":"x"}`)
	os.Chmod(ww, 0o757)
	gw := writePlugin(t, dir, "groupw", "", `{"description":"x"}`)
	os.Chmod(gw, 0o775)
	writePlugin(t, dir, "ls", "", `{"description":"clashes"}`)
	writePlugin(t, dir, "badjson", "", `{"description":`)
	writePlugin(t, dir, "badkind", "", `{"description":"x","kind":"daemon"}`)
	writePlugin(t, dir, "badlife", "", `{"description":"x","kind":"service","lifecycle":"forever"}`)
	writePlugin(t, dir, "unknownfield", "", `{"description":"x","colour":"red"}`)
	writePlugin(t, dir, "big", "", `{"description":"`+strings.Repeat("x", MaxMetadataSize)+`"}`)
	writePlugin(t, dir, "slow", "sleep 30", "")
	writePlugin(t, dir, "fails", "exit 3", "")
	writePlugin(t, dir, "chatty", `head -c 200000 /dev/zero | tr '\0' x`, "")
	cfg := Config{Path: dir, Builtin: func(n string) bool { return n == "ls" }, MetadataTimeout: 2 * time.Second}
	start := time.Now()
	r := Discover(context.Background(), cfg)
	if time.Since(start) > 20*time.Second {
		t.Errorf("discovery took %s: the metadata timeout was not applied", time.Since(start))
	}
	if len(r.Plugins) != 1 || r.Plugins[0].Name != "ok" {
		t.Errorf("plugins = %+v, want only ok", r.Plugins)
	}
	for name, want := range map[string]string{
		"noexec": "not executable", "worldw": "writable by other users", "groupw": "writable by other users",
		"ls": "built-in", "badjson": "not valid metadata JSON", "badkind": `kind "daemon"`,
		"badlife": `lifecycle "forever"`, "unknownfield": "unknown field", "big": "larger than",
		"slow": "did not answer within", "fails": "failed", "chatty": "more than",
	} {
		if got := skippedFor(r, name); !strings.Contains(got, want) {
			t.Errorf("skip reason for %s = %q, want it to contain %q", name, got, want)
		}
	}
}

func TestDiscoverRefusesWritableDirectory(t *testing.T) {
	dir := t.TempDir()
	writePlugin(t, dir, "x", "", `{"description":"x"}`)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	r := Discover(context.Background(), Config{Path: dir})
	if len(r.Plugins) != 0 || !strings.Contains(skippedFor(r, "x"), "its directory") {
		t.Errorf("result = %+v, want x refused for its world-writable directory", r)
	}
	// A refused candidate does not hide a later good one.
	good := privateDir(t)
	writePlugin(t, good, "x", "", `{"description":"good"}`)
	r = Discover(context.Background(), Config{Path: dir + string(os.PathListSeparator) + good})
	if p, ok := r.Get("x"); !ok || p.Description != "good" {
		t.Errorf("result = %+v, want x from the second directory", r)
	}
}

func TestEnv(t *testing.T) {
	env := Env([]string{"PATH=/bin", "BERTH_HOME=/old", "DOCKER_HOST=tcp://x"}, "top", "/h", "/h/berth.sock")
	got := strings.Join(env, " ")
	want := "PATH=/bin BERTH_HOME=/h BERTH_SOCKET=/h/berth.sock DOCKER_HOST=unix:///h/berth.sock BERTH_PLUGIN_NAME=top"
	if got != want {
		t.Errorf("Env = %s\nwant %s", got, want)
	}
}
