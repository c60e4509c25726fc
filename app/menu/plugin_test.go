package menu

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/plugin"
)

// TestPluginMenuEntries: a plugin's declared menu entries, found by
// discovery in the home's plugins directory, reach the State's snapshot
// of a real engine, the menu shows them under Plugins, and choosing one
// gives the berth command that runs the plugin.
func TestPluginMenuEntries(t *testing.T) {
	h := engineHome(t)
	dir := plugin.Dir(h.Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "berth-hello")
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho hi\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	md := `{"description":"x","menu":[{"title":"Say Hello","args":["--to","the world"]},{"title":"Hello Again"}]}`
	if err := os.WriteFile(path+".json", []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	// A service plugin's entries are not shown: the menu runs CLI plugins.
	svc := filepath.Join(dir, "berth-svc")
	if err := os.WriteFile(svc, []byte("#!/bin/sh\nexit 0\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(svc+".json", []byte(`{"description":"x","kind":"service","menu":[{"title":"Service Thing"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	st, _, _ := menuFor(t, h, WithPlugins(PluginEntries(plugin.Config{HomeDir: h.Dir})))
	startEngine(t, h)
	s := waitFor(t, st, "plugin entries", func(s Snapshot) bool { return len(s.Plugins) > 0 })
	if len(s.Plugins) != 2 {
		t.Fatalf("entries = %+v, want hello's two", s.Plugins)
	}
	m := Build(s, time.Now())
	mustItem(t, m, "Plugins")
	it := mustItem(t, m, "Say Hello")
	it.enabled(t)
	mustItem(t, m, "Hello Again")
	if _, ok := lookup(m.Items, []string{"Service Thing"}); ok {
		t.Error("a service plugin's menu entry is shown")
	}
	d := NewDispatcher(nil, st, WithCLI("/opt/berth", h.Dir))
	r, err := d.Do(context.Background(), Item(it).Action)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/opt/berth --home " + h.Dir + " hello --to 'the world'"; r.TerminalCommand != want {
		t.Errorf("command %q, want %q", r.TerminalCommand, want)
	}
	if _, err := d.Do(context.Background(), Action{Kind: RunPlugin, Plugin: "../x"}); err == nil {
		t.Error("a bad plugin name was run")
	}
	// Without plugins: no section.
	if _, ok := lookup(Build(Snapshot{Engine: Engine{State: EngineRunning}}, time.Now()).Items, []string{"Plugins"}); ok {
		t.Error("a Plugins section with no plugins")
	}
}

// TestFindEntry: only an entry a plugin declared, with its arguments
// exactly, is found (the Berth window's request to run one is checked
// against it); no arguments match an entry without any.
func TestFindEntry(t *testing.T) {
	entries := EntriesOf([]plugin.Plugin{
		{Name: "hello", Metadata: plugin.Metadata{Kind: plugin.KindCLI, Menu: []plugin.MenuEntry{{Title: "Say Hello", Args: []string{"--to", "the world"}}, {Title: "Wave"}}}},
		{Name: "svc", Metadata: plugin.Metadata{Kind: plugin.KindService, Menu: []plugin.MenuEntry{{Title: "Service Thing"}}}},
	})
	for _, c := range []struct {
		plugin string
		args   []string
		title  string
	}{
		{"hello", []string{"--to", "the world"}, "Say Hello"},
		{"hello", []string{}, "Wave"},
		{"hello", nil, "Wave"},
		{"hello", []string{"--to"}, ""},
		{"hello", []string{"--to", "the world", "x"}, ""},
		{"svc", nil, ""},
		{"top", nil, ""},
	} {
		e, ok := FindEntry(entries, c.plugin, c.args)
		if ok != (c.title != "") || e.Title != c.title {
			t.Errorf("FindEntry(%s, %q) = %+v, %v; want %q", c.plugin, c.args, e, ok, c.title)
		}
	}
}
