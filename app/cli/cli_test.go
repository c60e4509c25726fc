package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/internal/testenv"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type result struct {
	out, err string
	code     int
}

// berth runs the CLI's command tree in this process, as the berth binary
// does, on home.
func berth(t *testing.T, h string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), append([]string{"--home", h}, args...), IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	return result{out.String(), errb.String(), code}
}

// shortHome is a home whose socket path fits the unix limit.
func shortHome(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "h")
}

// TestCommandTreeWithoutDaemon runs the real command tree with no daemon:
// unknown commands and subcommands fail with cobra's message and a
// suggestion; every alias and docker flag is accepted and reaches the API
// (which then says Berth is not running).
func TestCommandTreeWithoutDaemon(t *testing.T) {
	h := shortHome(t)
	notRunning := "berth: Berth is not running: start it with `berth daemon` or open Berth.app (no daemon at " + filepath.Join(h, "berth.sock") + ")\n"
	file := filepath.Join(t.TempDir(), "kv")
	if err := os.WriteFile(file, []byte("# comment\nA=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		err  string // stderr, exactly
	}{
		// Unknown commands and subcommands.
		{"unknown top-level", []string{"foo"}, 1, "berth: unknown command \"foo\" for \"berth\"\nRun 'berth --help' for usage.\n"},
		{"unknown image subcommand", []string{"image", "frob", "x"}, 1, "berth: unknown command \"frob\" for \"berth image\"\nRun 'berth image --help' for usage.\n"},
		{"unknown subcommand with a flag", []string{"image", "frob", "-x"}, 1, "berth: unknown command \"frob\" for \"berth image\"\nRun 'berth image --help' for usage.\n"},
		{"mistyped image subcommand", []string{"image", "delet", "x"}, 1, "berth: unknown command \"delet\" for \"berth image\"\n\nDid you mean this?\n\trm\n\nRun 'berth image --help' for usage.\n"},
		{"mistyped system subcommand", []string{"system", "versoin"}, 1, "berth: unknown command \"versoin\" for \"berth system\"\n\nDid you mean this?\n\tversion\n\nRun 'berth system --help' for usage.\n"},
		{"mistyped top-level", []string{"imgaes"}, 1, "berth: unknown command \"imgaes\" for \"berth\"\n\nDid you mean this?\n\timages\n\nRun 'berth --help' for usage.\n"},
		{"unknown kernel subcommand", []string{"system", "kernel", "sett"}, 1, "berth: unknown command \"sett\" for \"berth system kernel\"\n\nDid you mean this?\n\tset\n\nRun 'berth system kernel --help' for usage.\n"},
		{"unknown flag", []string{"image", "prune", "--bogus"}, 1, "berth: unknown flag: --bogus\n"},
		{"help on an unknown topic", []string{"help", "image", "frob"}, 1, "berth: unknown command \"frob\" for \"berth image\"\nRun 'berth image --help' for usage.\n"},

		// Apple container's verbs.
		{"delete", []string{"delete", "x"}, 1, notRunning},
		{"delete --all", []string{"delete", "--all"}, 1, notRunning},
		{"rm --all -f", []string{"rm", "--all", "-f"}, 1, notRunning},
		{"list", []string{"list"}, 1, notRunning},
		{"image delete", []string{"image", "delete", "x"}, 1, notRunning},
		{"image list", []string{"image", "list"}, 1, notRunning},
		{"i ls", []string{"i", "ls"}, 1, notRunning},

		// Docker's flags.
		{"image prune -f", []string{"image", "prune", "-f"}, 1, notRunning},
		{"image prune --force --all", []string{"image", "prune", "--force", "--all"}, 1, notRunning},
		{"prune -f --filter", []string{"prune", "-f", "--filter", "label=a=b"}, 1, notRunning},
		{"rm -v", []string{"rm", "-v", "-f", "x"}, 1, notRunning},
		{"rmi --no-prune -f", []string{"rmi", "--no-prune", "-f", "x"}, 1, notRunning},
		{"ps -n", []string{"ps", "-n", "2"}, 1, notRunning},
		{"ps --latest", []string{"ps", "--latest", "-q", "--no-trunc"}, 1, notRunning},
		{"images -a --no-trunc -f", []string{"images", "-a", "--no-trunc", "-f", "dangling=true"}, 1, notRunning},
		{"logs --since --until", []string{"logs", "--since", "10m", "--until", "1s", "-n", "5", "x"}, 1, notRunning},
		{"stop --timeout -s", []string{"stop", "--timeout", "1", "-s", "SIGINT", "x"}, 1, notRunning},
		{"stop --time", []string{"stop", "--time", "1", "x"}, 1, notRunning},
		{"restart -s -t", []string{"restart", "-s", "SIGTERM", "-t", "0", "x"}, 1, notRunning},
		{"kill -s", []string{"kill", "-s", "HUP", "x"}, 1, notRunning},
		{"load -q -i", []string{"load", "-q", "-i", file}, 1, notRunning},
		{"exec --env-file", []string{"exec", "--env-file", file, "-e", "B=2", "c", "true"}, 1, notRunning},
		{"run with docker's create flags", []string{"run", "-h", "box", "--stop-signal", "SIGINT", "--stop-timeout", "3",
			"-q", "--label-file", file, "--env-file", file, "--rm", "img", "true"}, 125, notRunning},

		{"shell -u -w --", []string{"shell", "x", "-u", "root", "-w", "/", "--", "ls", "-l"}, 1, notRunning},
		{"shell --web", []string{"shell", "x", "--web", "--open"}, 1, notRunning},

		// Flags used wrong.
		{"shell with two containers", []string{"shell", "a", "b"}, 1, "berth: shell takes at most one CONTAINER before --, got 2 arguments: put the command after --\n"},
		{"shell --web without a container", []string{"shell", "--web"}, 1, "berth: berth shell --web needs a CONTAINER: start one (berth run -d -t -i IMAGE), then berth shell CONTAINER --web\n"},
		{"rm --all with names", []string{"rm", "--all", "x"}, 1, "berth: --all removes every container: name none, or leave out --all\n"},
		{"rm without names", []string{"rm"}, 1, "berth: \"berth rm\" requires at least 1 container, or --all\n"},
		{"bad platform", []string{"pull", "--platform", "arm64", "img"}, 1, "berth: invalid --platform \"arm64\": want os/arch[/variant], e.g. linux/arm64\n"},
		{"missing label file", []string{"create", "--label-file", "/nonexistent/labels", "img"}, 125, "berth: read label file /nonexistent/labels: open /nonexistent/labels: no such file or directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := berth(t, h, tt.args...)
			if r.code != tt.code || r.err != tt.err {
				t.Fatalf("berth %s: exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", strings.Join(tt.args, " "), r.code, r.err, tt.code, tt.err)
			}
		})
	}
}

// TestGroupAloneShowsHelp: a group command with no subcommand prints its
// help and succeeds, as docker's do.
func TestGroupAloneShowsHelp(t *testing.T) {
	h := shortHome(t)
	for _, args := range [][]string{{}, {"image"}, {"system"}, {"help"}, {"help", "image"}} {
		r := berth(t, h, args...)
		if r.code != 0 || !strings.Contains(r.out, "Available Commands:") || r.err != "" {
			t.Errorf("berth %v: %+v", args, r)
		}
	}
}

// TestSystemVersionAlias: `system version` is `version`.
func TestSystemVersionAlias(t *testing.T) {
	h := shortHome(t)
	a, b := berth(t, h, "version"), berth(t, h, "system", "version")
	if a.code != 0 || a != b || !strings.Contains(a.out, "Server: not running") {
		t.Fatalf("version: %+v\nsystem version: %+v", a, b)
	}
}

// TestCIDFileWithoutDaemon: a create that fails leaves no cidfile; an
// existing one is refused before anything is created, and kept.
func TestCIDFileWithoutDaemon(t *testing.T) {
	h := shortHome(t)
	cid := filepath.Join(t.TempDir(), "cid")
	r := berth(t, h, "create", "--cidfile", cid, "img")
	if r.code != 125 || !strings.Contains(r.err, "Berth is not running") {
		t.Fatalf("create: %+v", r)
	}
	if _, err := os.Stat(cid); !os.IsNotExist(err) {
		t.Fatalf("cidfile of a failed create left behind: %v", err)
	}
	if err := os.WriteFile(cid, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = berth(t, h, "run", "--cidfile", cid, "img")
	want := "berth: container ID file found, make sure the other container isn't running or delete " + cid + "\n"
	if r.code != 125 || r.err != want {
		t.Fatalf("run over an existing cidfile: %+v, want %q", r, want)
	}
	if b, _ := os.ReadFile(cid); string(b) != "old" {
		t.Fatalf("existing cidfile changed: %q", b)
	}
}

// startDaemon runs a real daemon on home in this process (no VM boots
// until a container starts).
func startDaemon(t *testing.T, dir string) {
	t.Helper()
	h, err := home.Resolve(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Config{Home: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
}

// TestWithDaemon drives the CLI against a real daemon through Docker's
// client: what it prints for errors, prunes, version, cidfile and rm
// --all is what berth always printed.
func TestWithDaemon(t *testing.T) {
	h := shortHome(t)
	startDaemon(t, h)

	r := berth(t, h, "rm", "nosuch")
	if r.code != 1 || r.err != "berth: No such container: nosuch\n" || r.out != "" {
		t.Fatalf("rm nosuch: %+v", r)
	}
	r = berth(t, h, "rm", "nosuch", "other")
	if r.code != 1 || r.err != "berth: No such container: nosuch\nNo such container: other\n" {
		t.Fatalf("rm of two missing: %+v", r)
	}
	r = berth(t, h, "image", "delete", "nosuch:image")
	if r.code != 1 || r.err != "berth: No such image: nosuch:image\n" {
		t.Fatalf("image delete nosuch: %+v", r)
	}
	r = berth(t, h, "image", "prune", "-f")
	if r.code != 0 || r.out != "Total reclaimed space: 0B\n" {
		t.Fatalf("image prune -f: %+v", r)
	}
	r = berth(t, h, "prune", "--force")
	if r.code != 0 || r.out != "" || r.err != "" {
		t.Fatalf("prune --force: %+v", r)
	}
	r = berth(t, h, "ps", "-a")
	if r.code != 0 || r.out != "CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   IP   PORTS   NAMES\n" {
		t.Fatalf("ps -a: %q", r.out)
	}
	r = berth(t, h, "shell")
	if r.code != 1 || r.err != "berth: no image to start a shell in: pull one first (berth pull debian), or give a running container (berth shell CONTAINER)\n" {
		t.Fatalf("shell with no image: %+v", r)
	}
	r = berth(t, h, "shell", "nosuch", "--web")
	if r.code != 1 || r.err != "berth: No such container: nosuch\n" || r.out != "" {
		t.Fatalf("shell nosuch --web: %+v", r)
	}
	r = berth(t, h, "version")
	if r.code != 0 || !strings.Contains(r.out, "\nServer: Berth ") || !strings.Contains(r.out, "API version: 1.47 (minimum ") ||
		strings.Count(r.out, "Go version:  go1.") != 2 {
		t.Fatalf("version:\n%s", r.out)
	}

	// A busybox image loaded from a tarball: create with --cidfile, then
	// rm --all removes what is not running.
	img := testenv.BusyboxImage(t, nil)
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	if err := tarball.WriteToFile(tarPath, name.MustParseReference("cli-test/busybox:1"), img); err != nil {
		t.Fatal(err)
	}
	r = berth(t, h, "load", "-q", "-i", tarPath)
	if r.code != 0 || !strings.Contains(r.out, "Loaded image: cli-test/busybox:1\n") {
		t.Fatalf("load: %+v", r)
	}
	cid := filepath.Join(t.TempDir(), "cid")
	r = berth(t, h, "create", "--cidfile", cid, "--name", "one", "cli-test/busybox:1", "true")
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	if b, err := os.ReadFile(cid); err != nil || string(b)+"\n" != r.out {
		t.Fatalf("cidfile holds %q (%v), create printed %q", b, err, r.out)
	}
	r = berth(t, h, "create", "--cidfile", cid, "--name", "two", "cli-test/busybox:1", "true")
	if r.code != 125 || !strings.Contains(r.err, "container ID file found") {
		t.Fatalf("create over the cidfile: %+v", r)
	}
	two := strings.TrimSpace(mustOK(t, berth(t, h, "create", "--name", "two", "cli-test/busybox:1", "true")).out)
	r = mustOK(t, berth(t, h, "ps", "--latest", "-q", "--no-trunc"))
	if r.out != two+"\n" {
		t.Fatalf("ps --latest: %q, want %s", r.out, two)
	}
	if r = mustOK(t, berth(t, h, "ps", "-n", "2", "-q")); strings.Count(r.out, "\n") != 2 {
		t.Fatalf("ps -n 2: %q", r.out)
	}
	checkFormats(t, h, two)
	r = mustOK(t, berth(t, h, "delete", "--all"))
	if got := strings.Fields(r.out); len(got) != 2 || !slices.Contains(got, "one") || !slices.Contains(got, "two") {
		t.Fatalf("delete --all printed %q, want one and two", r.out)
	}
	if r = mustOK(t, berth(t, h, "ps", "-a", "-q")); r.out != "" {
		t.Fatalf("containers left after delete --all: %q", r.out)
	}
}

// checkFormats: ps and images take docker's --format (json, a template,
// a table of a template), and a field they lack is an error.
func checkFormats(t *testing.T, h, twoID string) {
	t.Helper()
	r := mustOK(t, berth(t, h, "ps", "-a", "--format", "{{.Names}} {{.State}} {{.Image}}"))
	if lines := strings.Split(strings.TrimSpace(r.out), "\n"); len(lines) != 2 || !slices.Contains(lines, "two created cli-test/busybox:1") {
		t.Fatalf("ps --format template: %q", r.out)
	}
	r = mustOK(t, berth(t, h, "ps", "-a", "--no-trunc", "--format", "json", "--filter", "name=two"))
	var row map[string]string
	if err := json.Unmarshal([]byte(r.out), &row); err != nil || row["ID"] != twoID || row["Names"] != "two" || row["Command"] != `"true"` {
		t.Fatalf("ps --format json: %v %q", err, r.out)
	}
	r = mustOK(t, berth(t, h, "ps", "-a", "--filter", "name=two", "--format", `table {{.Names}}\t{{.Status}}`))
	if r.out != "NAMES   STATUS\ntwo     Created\n" {
		t.Fatalf("ps --format table: %q", r.out)
	}
	r = mustOK(t, berth(t, h, "images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"))
	if !strings.HasPrefix(r.out, "cli-test/busybox:1 ") || !strings.HasSuffix(r.out, "MB\n") || strings.Count(r.out, "\n") != 1 {
		t.Fatalf("images --format: %q", r.out)
	}
	r = berth(t, h, "images", "--format", "{{.Names}}")
	if r.code != 1 || !strings.Contains(r.err, `map has no entry for key "Names"`) {
		t.Fatalf("images --format of a field images lacks: %+v", r)
	}
	r = mustOK(t, berth(t, h, "images"))
	if !strings.HasPrefix(r.out, "REPOSITORY         TAG   IMAGE ID       CREATED       SIZE\ncli-test/busybox   1     ") {
		t.Fatalf("images: %q", r.out)
	}
}

func mustOK(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	return r
}

// TestPullQuietAndDigests: docker's pull -q prints only the full
// reference pulled; images --digests adds the repository's digest.
func TestPullQuietAndDigests(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "q", testenv.BusyboxImage(t, nil))
	h := shortHome(t)
	startDaemon(t, h)
	r := mustOK(t, berth(t, h, "pull", "-q", ref))
	if r.out != ref+"\n" || r.err != "" {
		t.Fatalf("pull -q: %+v", r)
	}
	r = mustOK(t, berth(t, h, "images", "--digests"))
	lines := strings.Split(r.out, "\n")
	header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	if len(header) < 4 || header[2] != "DIGEST" || len(row) < 4 || row[0] != reg.Host+"/test/busybox" || row[1] != "q" || !strings.HasPrefix(row[2], "sha256:") {
		t.Fatalf("images --digests:\n%s", r.out)
	}
	r = berth(t, h, "pull", "-q", reg.Host+"/test/missing:1")
	if r.code != 1 || r.out != "" || !strings.Contains(r.err, "test/missing") {
		t.Fatalf("pull -q of a missing image: %+v", r)
	}
}

// TestFastStartLine: the status line says when fast start cannot help
// (bridge mode's TAP NICs boot cold) and which container builds a template.
func TestFastStartLine(t *testing.T) {
	on := types.FastStartStatus{Enabled: true}
	if got := fastStartLine(on, "user"); !strings.Contains(got, "second container") || strings.Contains(got, "bridge") {
		t.Errorf("user mode, no template: %q", got)
	}
	if got := fastStartLine(on, "bridge"); !strings.Contains(got, "bridge networks boot cold") || !strings.Contains(got, "--network-mode user") {
		t.Errorf("bridge mode: %q", got)
	}
	if got := fastStartLine(types.FastStartStatus{}, "bridge"); !strings.HasPrefix(got, "off:") {
		t.Errorf("off: %q", got)
	}
}
