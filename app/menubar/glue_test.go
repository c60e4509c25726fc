package menubar

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/berthvm/berth/app/drop"
	"github.com/berthvm/berth/app/menu"
	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/terminal"
	"github.com/berthvm/berth/internal/testenv"
)

func TestEffects(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    menu.Result
		want []Effect
	}{
		{"nothing", menu.Result{}, nil},
		{"shell", menu.Result{URL: "http://127.0.0.1:1/terminal/#token=t", Container: "c1"}, []Effect{{OpenTerminalWindow, "http://127.0.0.1:1/terminal/#token=t"}}},
		{"copy ip", menu.Result{Copy: "10.0.0.2", Message: "Copied 10.0.0.2"}, []Effect{{CopyText, "10.0.0.2"}, {ShowMessage, "Copied 10.0.0.2"}}},
		{"terminal", menu.Result{TerminalCommand: "berth shell web"}, []Effect{{RunInTerminalApp, "berth shell web"}}},
		{"log", menu.Result{OpenPath: "/h/daemon.log"}, []Effect{{OpenFile, "/h/daemon.log"}}},
		{"window", menu.Result{Window: menu.SettingsWindow}, []Effect{{ShowWindow, "settings"}}},
		{"quit last", menu.Result{Quit: true, Message: "bye"}, []Effect{{ShowMessage, "bye"}, {Kind: QuitApp}}},
	} {
		if got := Effects(tc.r); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Effects = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestTicketFromURL redeems a token a real terminal.Manager issued, from
// the page URL the engine's webui server makes of it, once.
func TestTicketFromURL(t *testing.T) {
	m := terminal.NewManager(terminal.Config{})
	issued, err := m.Issue(terminal.Options{Container: "c1", Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	u := "http://127.0.0.1:4242/terminal/#token=" + issued.Token
	got, err := TicketFromURL(m, u)
	if err != nil || !reflect.DeepEqual(got, issued) {
		t.Fatalf("TicketFromURL = %+v, %v; want %+v", got, err, issued)
	}
	if _, err := TicketFromURL(m, u); !errors.Is(err, terminal.ErrBadToken) || strings.Contains(err.Error(), issued.Token) {
		t.Errorf("second redeem: %v, want ErrBadToken without the token", err)
	}
	if _, err := TicketFromURL(m, "http://127.0.0.1:4242/terminal/"); err == nil || !strings.Contains(err.Error(), "no #token=") {
		t.Errorf("URL without a token: %v", err)
	}
}

func TestConfirmation(t *testing.T) {
	snap := menu.Snapshot{Engine: menu.Engine{State: menu.EngineRunning},
		Containers: []menu.Container{{ID: "a", Name: "web", State: "running"}, {ID: "b", Name: "db", State: "running"}}}
	var quit menu.Item
	for _, it := range menu.Build(snap, snap.Containers[0].StartedAt).Items {
		if it.Action.Kind == menu.Quit {
			quit = it
		}
	}
	c, ok := ConfirmationFor(quit)
	if !ok || len(c.Buttons) != 3 || c.Message != quit.Confirm {
		t.Fatalf("quit with 2 running: %+v, %v", c, ok)
	}
	for resp, want := range map[int]struct {
		stop, ok bool
	}{1000: {true, true}, 1001: {false, true}, 1002: {false, false}, 999: {false, false}, 1003: {false, false}} {
		a, ok := c.Choose(resp)
		if ok != want.ok || (ok && (a.Kind != menu.Quit || a.StopContainers != want.stop || a.Running != 2)) {
			t.Errorf("Choose(%d) = %+v, %v; want stop %v, %v", resp, a, ok, want.stop, want.ok)
		}
	}

	if _, ok := ConfirmationFor(menu.Item{Title: "Quit Berth", Action: menu.Action{Kind: menu.Quit}}); ok {
		t.Error("quit with nothing running asked")
	}
	rm := menu.Item{Title: "Remove…", Confirm: "Remove web?", Action: menu.Action{Kind: menu.RemoveContainer, Container: "a", Force: true}}
	c, ok = ConfirmationFor(rm)
	if !ok || c.Buttons[0].Title != "Remove" || !c.Buttons[1].Cancel {
		t.Fatalf("remove: %+v", c)
	}
	if a, ok := c.Choose(1000); !ok || !reflect.DeepEqual(a, rm.Action) {
		t.Errorf("remove confirmed: %+v %v", a, ok)
	}
	if _, ok := c.Choose(1001); ok {
		t.Error("remove cancelled did something")
	}
}

func TestDialogInput(t *testing.T) {
	a := menu.Action{Kind: menu.RunImage}
	d, ok := a.Dialog()
	if !ok {
		t.Fatal("Run Image… has no dialog")
	}
	got, err := DialogInput(a, d, []string{" alpine:3 ", "web", "sh -c 'echo hi'"})
	if err != nil || got.Image != "alpine:3" || got.Run.Name != "web" || !reflect.DeepEqual(got.Run.Cmd, []string{"sh", "-c", "echo hi"}) {
		t.Fatalf("DialogInput = %+v, %v", got, err)
	}
	if _, err := DialogInput(a, d, []string{"", "", ""}); err == nil || !strings.Contains(err.Error(), "give an image reference") {
		t.Errorf("empty image: %v", err)
	}
	if _, err := DialogInput(a, d, []string{"x"}); err == nil {
		t.Error("too few values accepted")
	}
}

func TestErrorAlert(t *testing.T) {
	title, msg := ErrorAlert(menu.Item{Title: "Stop", Action: menu.Action{Kind: menu.StopContainer}}, errors.New("Error response from daemon: stop web: boom"))
	if title != "Stop failed" || msg != "stop web: boom" {
		t.Errorf("ErrorAlert = %q, %q", title, msg)
	}
	title, _ = ErrorAlert(menu.Item{Title: "Pull Image…"}, errors.New("x"))
	if title != "Pull Image failed" {
		t.Errorf("ErrorAlert(Pull Image…) title %q", title)
	}
}

// TestAlreadyRunning: a second engine on a home whose lock a real daemon
// holds is refused, and the app's alert names the first one's pid.
func TestAlreadyRunning(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bmb") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h, err := home.Resolve(filepath.Join(dir, "h"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Start(ctx, daemon.Config{Home: h})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(ctx)
	_, err = daemon.Start(ctx, daemon.Config{Home: h})
	title, msg, ok := AlreadyRunning(err)
	if want := "Berth is already running (pid " + strconv.Itoa(os.Getpid()) + ")"; !ok || title != want || !strings.Contains(msg, h.Dir) {
		t.Fatalf("AlreadyRunning(%v) = %q, %q, %v; want %q", err, title, msg, ok, want)
	}
	if _, _, ok := AlreadyRunning(errors.New("other")); ok {
		t.Error("any error is already running")
	}
}

// TestTerminalScript runs the .command file Terminal.app would run, with
// sh: it removes itself and runs the command.
func TestTerminalScript(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		testenv.Unavailable(t, "no sh: %v", err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	p, err := WriteTerminalScript(dir, "echo 'hi there' >"+out)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 || !strings.HasSuffix(p, ".command") {
		t.Fatalf("script %s: %v %v", p, fi, err)
	}
	if b, err := exec.Command(sh, "-c", p).CombinedOutput(); err != nil {
		t.Fatalf("run %s: %v\n%s", p, err, b)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "hi there\n" {
		t.Errorf("command output %q, %v", b, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("script left behind: %v", err)
	}
	if got := TerminalAppArgs(p); !reflect.DeepEqual(got, []string{"open", "-a", "Terminal", p}) {
		t.Errorf("TerminalAppArgs = %v", got)
	}
}

func TestIconFor(t *testing.T) {
	run := menu.Engine{State: menu.EngineRunning}
	for _, tc := range []struct {
		s    menu.Snapshot
		want Icon
	}{
		{menu.Snapshot{Engine: run}, IconRunning},
		{menu.Snapshot{}, IconStarting},
		{menu.Snapshot{Engine: menu.Engine{State: menu.EngineNotRunning, Reason: "x"}}, IconError},
		{menu.Snapshot{Engine: run, Kernel: menu.Kernel{Error: "none"}}, IconError},
		{menu.Snapshot{Engine: run, Kernel: menu.Kernel{Error: "none"}, KernelDownload: &menu.Progress{Current: 1}}, IconStarting},
		{menu.Snapshot{Engine: run, KernelDownload: &menu.Progress{Err: "404"}}, IconError},
	} {
		if got := IconFor(tc.s); got != tc.want {
			t.Errorf("IconFor(%+v) = %s, want %s", tc.s, got, tc.want)
		}
	}
}

func TestQuestionConfirmation(t *testing.T) {
	q := drop.Question{Title: "Share the folder that holds a.md?", Message: "…", OK: "Share Folder",
		Action: menu.Action{Kind: menu.ShareFolder, Container: "c1", HostPath: "/Users/me/docs"}}
	c := QuestionConfirmation(q)
	if a, ok := c.Choose(alertFirstButton); !ok || a.HostPath != "/Users/me/docs" || a.Kind != menu.ShareFolder || c.Buttons[0].Title != "Share Folder" {
		t.Errorf("OK: %+v, %v", a, ok)
	}
	if _, ok := c.Choose(alertFirstButton + 1); ok {
		t.Error("Cancel shares")
	}
}

func TestDropChooser(t *testing.T) {
	if _, err := DropChooser(menu.Snapshot{}, []string{"/a"}); !errors.Is(err, drop.ErrNoContainers) {
		t.Errorf("no containers: %v", err)
	}
	s := menu.Snapshot{Containers: []menu.Container{
		{ID: "d1", Name: "db", Image: "postgres:17", State: "exited"},
		{ID: "w1", Name: "web", Image: "nginx:alpine", State: "running"},
	}}
	c, err := DropChooser(s, []string{"/Users/me/src", "/Users/me/docs"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Message, "src and docs") || !reflect.DeepEqual(c.Titles, []string{"web — nginx:alpine", "db — postgres:17 (not running: from its next start)"}) {
		t.Errorf("chooser %+v", c)
	}
	if got, ok := c.Pick(alertFirstButton, 1); !ok || got.ID != "d1" {
		t.Errorf("pick the second: %+v, %v", got, ok)
	}
	for _, bad := range [][2]int{{alertFirstButton + 1, 0}, {alertFirstButton, 2}, {alertFirstButton, -1}} {
		if got, ok := c.Pick(bad[0], bad[1]); ok {
			t.Errorf("Pick(%d, %d) = %+v, want nothing", bad[0], bad[1], got)
		}
	}
}
