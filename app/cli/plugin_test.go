package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// homeWithPlugin is a home whose plugins directory holds berth-<name>
// (a shell script) with metadata md.
func homeWithPlugin(t *testing.T, name, script, md string) string {
	t.Helper()
	h := shortHome(t)
	dir := filepath.Join(h, "plugins")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "berth-"+name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".json", []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPluginInHelpAndCompletion(t *testing.T) {
	t.Setenv("BERTH_PLUGIN_PATH", "")
	h := homeWithPlugin(t, "hello", "echo hi", `{"description":"Says hello to you"}`)
	for _, args := range [][]string{{"--help"}, {"help"}, {}} {
		r := berth(t, h, args...)
		if r.code != 0 {
			t.Fatalf("berth %v: exit %d: %s", args, r.code, r.err)
		}
		_, after, ok := strings.Cut(r.out, "Plugin commands:\n")
		if !ok || !strings.Contains(after, "hello") || !strings.Contains(after, "Says hello to you") {
			t.Errorf("berth %v: no Plugin commands heading listing hello:\n%s", args, r.out)
		}
		if before, _, _ := strings.Cut(r.out, "Plugin commands:"); !strings.Contains(before, "Available Commands:") || !strings.Contains(before, "  run ") {
			t.Errorf("berth %v: built-in commands no longer under Available Commands:\n%s", args, r.out)
		}
	}
	r := berth(t, h, "__complete", "hel")
	if !strings.Contains(r.out, "hello\tSays hello to you") {
		t.Errorf("completion of hel = %q, want hello", r.out)
	}
	// Without plugins the help is berth's own, unchanged.
	r = berth(t, shortHome(t), "--help")
	if strings.Contains(r.out, "Plugin commands") || !strings.Contains(r.out, "Available Commands:") {
		t.Errorf("help without plugins:\n%s", r.out)
	}
}

func TestPluginRunAndUnknownCommand(t *testing.T) {
	t.Setenv("BERTH_PLUGIN_PATH", "")
	h := homeWithPlugin(t, "hello", `echo "args=$* name=$BERTH_PLUGIN_NAME home=$BERTH_HOME"; echo oops >&2; exit 5`, `{"description":"x"}`)
	r := berth(t, h, "hello", "--flag", "a b")
	if r.code != 5 {
		t.Errorf("exit code %d, want the plugin's 5", r.code)
	}
	if want := "args=--flag a b name=hello home=" + h + "\n"; r.out != want {
		t.Errorf("stdout %q, want %q", r.out, want)
	}
	if r.err != "oops\n" {
		t.Errorf("stderr %q, want the plugin's alone", r.err)
	}
	r = berth(t, h, "helo")
	if r.code != 1 || !strings.Contains(r.err, `unknown command "helo" for "berth"`) || !strings.Contains(r.err, "\thello\n") {
		t.Errorf("berth helo: exit %d, stderr %q: want unknown command suggesting hello", r.code, r.err)
	}
}

func TestBuiltinWinsOverPlugin(t *testing.T) {
	t.Setenv("BERTH_PLUGIN_PATH", "")
	h := homeWithPlugin(t, "version", "echo plugin; exit 9", `{"description":"x"}`)
	r := berth(t, h, "plugin", "ls")
	if r.code != 0 || !strings.Contains(r.out, "Skipped:") || !strings.Contains(r.out, "built-in berth command") {
		t.Errorf("plugin ls: exit %d\n%s%s", r.code, r.out, r.err)
	}
	// With a --format, stdout has the plugins' rows alone (none here)
	// and the skipped candidates go to stderr.
	r = berth(t, h, "plugin", "ls", "--format", "json")
	if r.code != 0 || r.out != "" || !strings.Contains(r.err, "skipped version (") || !strings.Contains(r.err, "built-in berth command") {
		t.Errorf("plugin ls --format json: exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
	}
	r = berth(t, h, "version")
	if strings.Contains(r.out, "plugin") {
		t.Errorf("berth version ran the plugin: %q", r.out)
	}
}

// TestPluginLsFormat: plugin ls's --format is docker's, as ps and images
// have it: json (one object a plugin), a Go template per plugin, and
// "table TEMPLATE" under the fields' headers; a bad template or field is
// an error naming it.
func TestPluginLsFormat(t *testing.T) {
	t.Setenv("BERTH_PLUGIN_PATH", "")
	h := homeWithPlugin(t, "hello", "echo hi", `{"description":"Says hello","version":"1.2","vendor":"Acme","menu":[{"title":"Say Hello"},{"title":"Wave"}]}`)
	svc := filepath.Join(h, "plugins", "berth-watch")
	if err := os.WriteFile(svc, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(svc+".json", []byte(`{"description":"Watches","kind":"service","lifecycle":"container"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := berth(t, h, "plugin", "ls", "--format", "json")
	if r.code != 0 || r.err != "" {
		t.Fatalf("plugin ls --format json: exit %d, %s", r.code, r.err)
	}
	var rows []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(r.out), "\n") {
		var row map[string]string
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("plugin ls --format json line %q: %v", line, err)
		}
		rows = append(rows, row)
	}
	want := []map[string]string{
		{"Name": "hello", "Kind": "cli", "Lifecycle": "", "Version": "1.2", "Vendor": "Acme", "Source": "home",
			"Path": filepath.Join(h, "plugins", "berth-hello"), "Description": "Says hello", "Menu": "Say Hello, Wave"},
		{"Name": "watch", "Kind": "service", "Lifecycle": "container", "Version": "", "Vendor": "", "Source": "home",
			"Path": svc, "Description": "Watches", "Menu": ""},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("plugin ls --format json:\n%v\nwant\n%v", rows, want)
	}
	if r := berth(t, h, "plugin", "ls", "--format", "{{.Name}} {{.Kind}}/{{.Lifecycle}} {{upper .Vendor}}"); r.code != 0 || r.out != "hello cli/ ACME\nwatch service/container \n" {
		t.Errorf("plugin ls --format TEMPLATE: exit %d, %q %s", r.code, r.out, r.err)
	}
	r = berth(t, h, "plugin", "ls", "--format", "table {{.Name}}\t{{.Menu}}")
	if lines := strings.Split(r.out, "\n"); r.code != 0 || len(lines) != 4 || strings.Fields(lines[0])[0] != "NAME" || strings.Fields(lines[0])[1] != "MENU" ||
		!strings.HasPrefix(lines[1], "hello") || !strings.HasSuffix(lines[1], "Say Hello, Wave") || strings.TrimSpace(lines[2]) != "watch" {
		t.Errorf("plugin ls --format 'table …': exit %d\n%s", r.code, r.out)
	}
	// The default table is unchanged by the flag's arrival.
	if r := berth(t, h, "plugin", "ls", "--format", "table"); r.code != 0 || !strings.HasPrefix(r.out, "NAME") || !strings.Contains(r.out, "service/container") {
		t.Errorf("plugin ls --format table: exit %d\n%s", r.code, r.out)
	}
	for _, bad := range []string{"{{.Nope}}", "{{.Name"} {
		if r := berth(t, h, "plugin", "ls", "--format", bad); r.code == 0 || !strings.Contains(r.err, "--format") || !strings.Contains(r.err, bad) {
			t.Errorf("plugin ls --format %q: exit %d, stderr %q; want an error naming the format", bad, r.code, r.err)
		}
	}
}

func TestPluginWritableRefused(t *testing.T) {
	t.Setenv("BERTH_PLUGIN_PATH", "")
	h := homeWithPlugin(t, "hello", "echo hi", `{"description":"x"}`)
	if err := os.Chmod(filepath.Join(h, "plugins", "berth-hello"), 0o777); err != nil {
		t.Fatal(err)
	}
	r := berth(t, h, "plugin", "ls")
	if !strings.Contains(r.out, "writable by other users") {
		t.Errorf("plugin ls:\n%s", r.out)
	}
	if r := berth(t, h, "hello"); r.code != 1 || !strings.Contains(r.err, "unknown command") {
		t.Errorf("a world-writable plugin ran: exit %d, %q %q", r.code, r.out, r.err)
	}
}

func TestCommandPosition(t *testing.T) {
	for _, c := range []struct {
		args []string
		pos  int
		home string
	}{
		{[]string{"top"}, 0, ""},
		{[]string{"--home", "/x", "top", "-a"}, 2, "/x"},
		{[]string{"--home=/y", "top"}, 1, "/y"},
		{[]string{"--help"}, -1, ""},
		{nil, -1, ""},
	} {
		pos, home := commandPosition(c.args)
		if pos != c.pos || home != c.home {
			t.Errorf("commandPosition(%q) = %d, %q; want %d, %q", c.args, pos, home, c.pos, c.home)
		}
	}
}
