package menu

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/app/settings"
)

var update = flag.Bool("update", false, "rewrite testdata/menu.golden and docs/menu.txt")

// now is the time the model tests build menus at.
var now = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func running(name, image, ip string, up time.Duration) Container {
	return Container{ID: name + "0123456789abcdef", Name: name, Image: image, State: "running", IP: ip,
		Created: now.Add(-up - time.Minute), StartedAt: now.Add(-up)}
}

func exited(name, image string, code int, ago time.Duration) Container {
	return Container{ID: name + "0123456789abcdef", Name: name, Image: image, State: "exited", ExitCode: code,
		Created: now.Add(-ago - time.Hour), StartedAt: now.Add(-ago - 30*time.Minute), FinishedAt: now.Add(-ago)}
}

var (
	alpine = Image{ID: "sha256:aaaa1111bbbb2222", Refs: []string{"alpine:3"}, Size: 7_800_000, Created: now.Add(-48 * time.Hour)}
	nginx  = Image{ID: "sha256:cccc3333dddd4444", Refs: []string{"nginx:alpine"}, Size: 48_500_000, Created: now.Add(-24 * time.Hour)}
	up     = Engine{State: EngineRunning, Backend: "qemu (kvm)"}
	kernel = Kernel{Version: "6.12.57+deb13-cloud-amd64"}
)

// modelCase is one state of the engine and what its menu must show.
type modelCase struct {
	name  string
	snap  Snapshot
	check func(t *testing.T, m Menu)
}

func modelCases() []modelCase {
	var many []Container
	for i := range 15 {
		c := exited(fmt.Sprintf("job-%02d", i), "alpine:3", 0, time.Duration(i+1)*time.Hour)
		if i%5 == 4 {
			c = running(fmt.Sprintf("svc-%02d", i), "nginx:alpine", fmt.Sprintf("10.88.0.%d", i+2), time.Duration(i)*time.Minute)
		}
		many = append(many, c)
	}
	var manyImages []Image
	for i := range 12 {
		manyImages = append(manyImages, Image{ID: fmt.Sprintf("sha256:%064d", i), Refs: []string{fmt.Sprintf("tool-%02d:latest", i)}, Size: int64(i+1) * 1_000_000})
	}
	failed := exited("api", "python:3.13", 1, 3*time.Minute)
	failed.Error = `exec: "gunicorn": executable file not found in $PATH`
	shared := running("dev", "golang:1.26", "10.88.0.7", 2*time.Hour)
	shared.Shares = []Share{{HostPath: "/Users/me/src/app", ContainerPath: "/src"}, {HostPath: "/Users/me/data", ContainerPath: "/data", ReadOnly: true},
		{HostPath: "/Users/me/.berth/volumes/gocache/_data", ContainerPath: "/root/.cache/go-build", AtCreate: true, Volume: "gocache"},
		{HostPath: "/Users/me/go", ContainerPath: "/go", AtCreate: true}}
	sharedStopped := exited("notes", "alpine:3", 0, time.Hour)
	sharedStopped.Shares = []Share{{HostPath: "/Users/me/notes", ContainerPath: "/mnt/notes"}}

	return []modelCase{
		{"engine starting", Snapshot{Engine: Engine{State: EngineStarting}}, func(t *testing.T, m Menu) {
			first(t, m, "Berth is starting…")
			noItem(t, m, "Containers")
			mustItem(t, m, "Pull Image…").disabledBecause(t, "Berth is starting.")
			mustItem(t, m, "Quit Berth").enabled(t).does(t, Action{Kind: Quit})
		}},
		{"engine not running", Snapshot{Engine: Engine{State: EngineNotRunning, Reason: "nothing answers on /Users/me/.berth/berth.sock", LogPath: "/Users/me/.berth/daemon.log"}}, func(t *testing.T, m Menu) {
			first(t, m, "Berth is not running: nothing answers on /Users/me/.berth/berth.sock")
			mustItem(t, m, "Open Log").enabled(t).does(t, Action{Kind: OpenLog})
			noItem(t, m, "Images")
			mustItem(t, m, "Run Image…").disabledBecause(t, "Berth is not running.")
		}},
		{"no kernel", Snapshot{Engine: up, Kernel: Kernel{Error: "no Linux kernel found: looked at $BERTH_KERNEL, kernel.json, the kernel cache"}, Images: []Image{alpine}}, func(t *testing.T, m Menu) {
			mustItem(t, m, "No Linux kernel: no Linux kernel found: looked at $BERTH_KERNEL, kernel.json, the kernel cache")
			mustItem(t, m, "Set up kernel…").enabled(t).does(t, Action{Kind: SetUpKernel})
			mustItem(t, m, "Run Image…").disabledBecause(t, "No Linux kernel: set up a kernel first.")
			mustItem(t, m, "Pull Image…").enabled(t)
			mustItem(t, m, "alpine:3 — 7.8MB", "Run…").disabledBecause(t, "No Linux kernel: set up a kernel first.")
			mustItem(t, m, "alpine:3 — 7.8MB", "Remove…").enabled(t)
		}},
		{"kernel download", Snapshot{Engine: up, Kernel: Kernel{Error: "no Linux kernel found"}, KernelDownload: &Progress{Subject: "https://deb.debian.org/linux-image.deb"}}, func(t *testing.T, m Menu) {
			mustItem(t, m, "Downloading kernel…")
			noItem(t, m, "Set up kernel…")
		}},
		{"no images", Snapshot{Engine: up, Kernel: kernel}, func(t *testing.T, m Menu) {
			first(t, m, "Berth is running")
			mustItem(t, m, "No containers").disabledBecause(t, "")
			mustItem(t, m, "No images").disabledBecause(t, "")
			mustItem(t, m, "Pull Image…").enabled(t).does(t, Action{Kind: PullImage})
			mustItem(t, m, "Run Image…").enabled(t).does(t, Action{Kind: RunImage})
		}},
		{"two containers and two images", Snapshot{Engine: up, Kernel: kernel, Images: []Image{nginx, alpine},
			Containers: []Container{exited("db", "postgres:17", 0, 20*time.Minute), running("web", "nginx:alpine", "10.88.0.2", 5*time.Minute)}}, func(t *testing.T, m Menu) {
			first(t, m, "Berth is running · 1 container running")
			web := mustItem(t, m, "web — nginx:alpine")
			if web.State != On {
				t.Errorf("running web is not checked")
			}
			mustItem(t, m, "web — nginx:alpine", "Running · up 5 minutes")
			mustItem(t, m, "web — nginx:alpine", "IP: 10.88.0.2")
			mustItem(t, m, "web — nginx:alpine", "Open Shell").enabled(t).does(t, Action{Kind: OpenShell, Container: "web0123456789abcdef", Name: "web"})
			mustItem(t, m, "web — nginx:alpine", "Copy IP").enabled(t).does(t, Action{Kind: CopyIP, Container: "web0123456789abcdef", Name: "web"})
			mustItem(t, m, "web — nginx:alpine", "Share Folder…").enabled(t).does(t, Action{Kind: ShareFolder, Container: "web0123456789abcdef", Name: "web"})
			noItem(t, m, "web — nginx:alpine", "Shared Folders")
			mustItem(t, m, "web — nginx:alpine", "Stop").enabled(t)
			mustItem(t, m, "web — nginx:alpine", "Restart").enabled(t)
			noItem(t, m, "web — nginx:alpine", "Start")
			rm := mustItem(t, m, "web — nginx:alpine", "Remove…").enabled(t)
			if !rm.Action.Force || !strings.Contains(rm.Confirm, "It is running") {
				t.Errorf("removing a running container: %+v, want Force and a warning", rm)
			}
			mustItem(t, m, "db — postgres:17", "Exited (0) 20 minutes ago")
			mustItem(t, m, "db — postgres:17", "Open Shell").disabledBecause(t, "The container is not running.")
			mustItem(t, m, "db — postgres:17", "Copy IP").disabledBecause(t, "The container has no IP address: it is not running.")
			mustItem(t, m, "db — postgres:17", "Start").enabled(t).does(t, Action{Kind: StartContainer, Container: "db0123456789abcdef", Name: "db"})
			noItem(t, m, "db — postgres:17", "Stop")
			if sh := mustItem(t, m, "db — postgres:17", "Share Folder…").enabled(t); !strings.Contains(sh.Tooltip, "appears in db when it starts") {
				t.Errorf("Share Folder… of a stopped container: tooltip %q, want that it appears at the next start", sh.Tooltip)
			}
			mustItem(t, m, "nginx:alpine — 48.5MB", "Run Shell").enabled(t).does(t, Action{Kind: RunShell, Image: "nginx:alpine"})
			quit := mustItem(t, m, "Quit Berth")
			if quit.Action.Running != 1 || quit.Confirm == "" || quit.Shortcut.String() != "⌘Q" {
				t.Errorf("quit with one container running: %+v", quit)
			}
			if got := titles(m.Items); !before(got, "web — nginx:alpine", "db — postgres:17") || !before(got, "alpine:3 — 7.8MB", "nginx:alpine — 48.5MB") {
				t.Errorf("order: %q", got)
			}
		}},
		{"container exited with an error", Snapshot{Engine: up, Kernel: kernel, Images: []Image{alpine}, Containers: []Container{failed}}, func(t *testing.T, m Menu) {
			first(t, m, "Berth is running")
			mustItem(t, m, "api — python:3.13", "Exited (1) 3 minutes ago")
			mustItem(t, m, "api — python:3.13", `Error: exec: "gunicorn": executable file not found in $PATH`)
			mustItem(t, m, "api — python:3.13", "Logs").enabled(t).does(t, Action{Kind: ShowLogs, Container: failed.ID, Name: "api"})
			quit := mustItem(t, m, "Quit Berth")
			if quit.Action.Running != 0 || quit.Confirm != "" {
				t.Errorf("quit with nothing running asks: %+v", quit)
			}
		}},
		{"pull in progress", Snapshot{Engine: up, Kernel: kernel, Images: []Image{alpine}, Pulls: []Progress{
			{Subject: "postgres:17", Current: 45_000_000, Total: 150_000_000, Layers: 6, LayersDone: 2},
			{Subject: "redis:8", Layers: 3, LayersDone: 1},
			{Subject: "no/such:image", Err: "pull access denied for no/such: repository does not exist"},
		}}, func(t *testing.T, m Menu) {
			mustItem(t, m, "Pulling postgres:17… 30% (45MB of 150MB)", "Cancel Pull").enabled(t).does(t, Action{Kind: CancelPull, Ref: "postgres:17"})
			mustItem(t, m, "Pulling redis:8… 1 of 3 layers")
			mustItem(t, m, "Pull of no/such:image failed: pull access denied for no/such: repository does not exist", "Dismiss").does(t, Action{Kind: DismissPull, Ref: "no/such:image"})
		}},
		{"launch at login on", Snapshot{Engine: up, Kernel: kernel, LaunchAtLogin: &settings.LoginState{Available: true, On: true}}, func(t *testing.T, m Menu) {
			if it := mustItem(t, m, "Launch at Login").enabled(t).does(t, Action{Kind: SetLaunchAtLogin, Enable: false}); it.State != On {
				t.Errorf("Launch at Login when on: state %v, want checked", it.State)
			}
			if got := titles(m.Items); !before(got, "Settings…", "Launch at Login") || !before(got, "Launch at Login", "Quit Berth") {
				t.Errorf("order: %q", got)
			}
		}},
		{"share active", Snapshot{Engine: up, Kernel: kernel, Images: []Image{alpine}, Containers: []Container{shared, sharedStopped}}, func(t *testing.T, m Menu) {
			mustItem(t, m, "dev — golang:1.26", "Share Folder…").enabled(t).does(t, Action{Kind: ShareFolder, Container: shared.ID, Name: "dev"})
			mustItem(t, m, "dev — golang:1.26", "Shared Folders", "/Users/me/src/app → /src", "Stop Sharing").enabled(t).
				does(t, Action{Kind: StopSharing, Container: shared.ID, Name: "dev", Share: shared.Shares[0]})
			mustItem(t, m, "dev — golang:1.26", "Shared Folders", "/Users/me/data → /data (read-only)", "Stop Sharing").enabled(t).
				does(t, Action{Kind: StopSharing, Container: shared.ID, Name: "dev", Share: shared.Shares[1]})
			// Made at create time (-v): listed, not stoppable.
			mustItem(t, m, "dev — golang:1.26", "Shared Folders", "volume gocache → /root/.cache/go-build", "Stop Sharing").
				disabledBecause(t, "Shared when dev was created (-v or --mount): it lasts as long as the container.")
			mustItem(t, m, "dev — golang:1.26", "Shared Folders", "/Users/me/go → /go", "Stop Sharing").
				disabledBecause(t, "Shared when dev was created (-v or --mount): it lasts as long as the container.")
			// A stopped container's recorded share is listed, and can be
			// stopped, before it comes back at the next start.
			mustItem(t, m, "notes — alpine:3", "Shared Folders", "/Users/me/notes → /mnt/notes", "Stop Sharing").enabled(t)
		}},
		{"many containers", Snapshot{Engine: up, Kernel: kernel, Images: manyImages, Containers: many}, func(t *testing.T, m Menu) {
			first(t, m, "Berth is running · 3 containers running")
			got := titles(m.Items)
			// Running first (most recently started first), then the most
			// recent of the rest, capped at MaxContainers.
			want := []string{"svc-04 — nginx:alpine", "svc-09 — nginx:alpine", "svc-14 — nginx:alpine", "job-00 — alpine:3", "job-01 — alpine:3"}
			at := index(got, "[Containers]")
			for i, w := range want {
				if got[at+1+i] != w {
					t.Fatalf("container %d is %q, want %q; menu: %q", i, got[at+1+i], w, got)
				}
			}
			mustItem(t, m, "5 more… → Open Berth Window").does(t, Action{Kind: OpenWindow})
			mustItem(t, m, "2 more… → Open Berth Window")
			n := 0
			for _, it := range m.Items {
				if strings.Contains(it.Title, " — ") {
					n++
				}
			}
			if n != MaxContainers+MaxImages {
				t.Errorf("%d containers and images shown, want %d", n, MaxContainers+MaxImages)
			}
			if q := mustItem(t, m, "Quit Berth"); q.Action.Running != 3 || !strings.Contains(q.Confirm, "3 containers are running") {
				t.Errorf("quit: %+v", q)
			}
		}},
	}
}

// TestBuild checks the menu of every state, and its rendering against
// testdata/menu.golden (and docs/menu.txt, its copy for people without
// a Mac). go test -run TestBuild -update rewrites both.
func TestBuild(t *testing.T) {
	var golden strings.Builder
	golden.WriteString("Berth's menu-bar menu, drawn as text by app/menu.Render (go test ./app/menu -run TestBuild -update).\n")
	golden.WriteString("✓ checked (running)   – mixed   ▸ submenu   [Section]   (disabled: why)   (asks: confirmation)\n")
	for _, c := range modelCases() {
		m := Build(c.snap, now)
		t.Run(c.name, func(t *testing.T) { c.check(t, m) })
		fmt.Fprintf(&golden, "\n=== %s ===\n%s", c.name, Render(m))
	}
	paths := []string{filepath.Join("testdata", "menu.golden"), filepath.Join("..", "..", "docs", "menu.txt")}
	if *update {
		for _, p := range paths {
			if err := os.WriteFile(p, []byte(golden.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range paths {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (go test -run TestBuild -update writes it)", err)
		}
		if string(want) != golden.String() {
			t.Errorf("%s differs from the menu rendered now (go test -run TestBuild -update rewrites it); now:\n%s", p, golden.String())
		}
	}
}

// TestLaunchAtLoginItem: the item in each state of the setting, and
// none where the app offers no setting.
func TestLaunchAtLoginItem(t *testing.T) {
	for _, c := range []struct {
		state   settings.LoginState
		enabled bool
		check   CheckState
		enable  bool
	}{
		{settings.LoginState{Available: true}, true, Off, true},
		{settings.LoginState{Available: true, On: true}, true, On, false},
		{settings.LoginState{Available: true, Pending: true, Reason: settings.ReasonApproval}, true, Mixed, false},
		{settings.LoginState{Reason: settings.ReasonNotFound}, false, Off, true},
	} {
		it := mustItem(t, Build(Snapshot{Engine: up, LaunchAtLogin: &c.state}, now), "Launch at Login")
		if it.Enabled != c.enabled || it.State != c.check || fmt.Sprintf("%+v", it.Action) != fmt.Sprintf("%+v", Action{Kind: SetLaunchAtLogin, Enable: c.enable}) || it.Tooltip != c.state.Reason {
			t.Errorf("%+v: item %+v", c.state, it)
		}
	}
	noItem(t, Build(Snapshot{Engine: up}, now), "Launch at Login")
}

// TestBuildDoesNotChangeSnapshot: Build sorts a copy.
func TestBuildDoesNotChangeSnapshot(t *testing.T) {
	cs := []Container{exited("a", "x", 0, time.Hour), running("b", "x", "10.0.0.2", time.Minute)}
	Build(Snapshot{Engine: up, Containers: cs}, now)
	if cs[0].Name != "a" {
		t.Error("Build reordered the snapshot's containers")
	}
}

type found Item

func (f found) enabled(t *testing.T) found {
	t.Helper()
	if !f.Enabled {
		t.Errorf("%q is disabled (%s), want enabled", f.Title, f.Tooltip)
	}
	return f
}

// disabledBecause checks the item is disabled, with why as its tooltip
// when why is not empty.
func (f found) disabledBecause(t *testing.T, why string) found {
	t.Helper()
	if f.Enabled {
		t.Errorf("%q is enabled, want disabled", f.Title)
	}
	if why != "" && f.Tooltip != why {
		t.Errorf("%q: tooltip %q, want %q", f.Title, f.Tooltip, why)
	}
	return f
}

func (f found) does(t *testing.T, a Action) found {
	t.Helper()
	if fmt.Sprintf("%+v", f.Action) != fmt.Sprintf("%+v", a) {
		t.Errorf("%q does %+v, want %+v", f.Title, f.Action, a)
	}
	return f
}

// lookup finds the item at path (titles, top level first).
func lookup(items []Item, path []string) (Item, bool) {
	for _, it := range items {
		if it.Title == path[0] || (it.Header && "["+it.Title+"]" == path[0]) {
			if len(path) == 1 {
				return it, true
			}
			return lookup(it.Submenu, path[1:])
		}
	}
	return Item{}, false
}

func mustItem(t *testing.T, m Menu, path ...string) found {
	t.Helper()
	it, ok := lookup(m.Items, path)
	if !ok {
		t.Fatalf("no item %q in the menu:\n%s", path, Render(m))
	}
	return found(it)
}

func noItem(t *testing.T, m Menu, path ...string) {
	t.Helper()
	if _, ok := lookup(m.Items, path); ok {
		t.Errorf("item %q is in the menu, want none:\n%s", path, Render(m))
	}
	if len(path) == 1 {
		if _, ok := lookup(m.Items, []string{"[" + path[0] + "]"}); ok {
			t.Errorf("section %q is in the menu, want none:\n%s", path[0], Render(m))
		}
	}
}

func first(t *testing.T, m Menu, title string) {
	t.Helper()
	if m.Items[0].Title != title || m.Items[0].Enabled {
		t.Errorf("status line %q (enabled %v), want %q, disabled", m.Items[0].Title, m.Items[0].Enabled, title)
	}
}

func titles(items []Item) []string {
	var out []string
	for _, it := range items {
		if it.Header {
			out = append(out, "["+it.Title+"]")
		} else if !it.Separator {
			out = append(out, it.Title)
		}
	}
	return out
}

func index(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func before(s []string, a, b string) bool {
	i, j := index(s, a), index(s, b)
	return i >= 0 && j >= 0 && i < j
}
