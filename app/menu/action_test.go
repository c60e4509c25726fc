package menu

import (
	"errors"
	"slices"
	"testing"

	"github.com/berthvm/berth/app/settings"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
	"github.com/moby/moby/api/types/jsonstream"
)

func TestSplitCommand(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"", nil, false},
		{"  sleep   1000 ", []string{"sleep", "1000"}, false},
		{`sh -c 'echo "hi there"; exit 3'`, []string{"sh", "-c", `echo "hi there"; exit 3`}, false},
		{`echo "a\"b" c\ d ''`, []string{"echo", `a"b`, "c d", ""}, false},
		{`echo 'unterminated`, nil, true},
		{`echo trailing\`, nil, true},
	} {
		got, err := SplitCommand(c.in)
		if (err != nil) != c.err || !slices.Equal(got, c.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestDialogAndInput(t *testing.T) {
	for _, c := range []struct {
		name   string
		a      Action
		dialog bool
		values map[string]string
		want   Action
		err    string
	}{
		{"pull", Action{Kind: PullImage}, true, map[string]string{"ref": " alpine:3 "}, Action{Kind: PullImage, Ref: "alpine:3"}, ""},
		{"pull without a ref", Action{Kind: PullImage}, true, map[string]string{"ref": " "}, Action{}, "pull: give an image reference, e.g. alpine:latest"},
		{"pull with its ref needs no dialog", Action{Kind: PullImage, Ref: "x"}, false, nil, Action{}, ""},
		{"run image…", Action{Kind: RunImage}, true, map[string]string{"image": "alpine:3", "name": "w", "cmd": "sleep 1000"},
			Action{Kind: RunImage, Image: "alpine:3", Run: RunOptions{Name: "w", Cmd: []string{"sleep", "1000"}}}, ""},
		{"run of an image", Action{Kind: RunImage, Image: "alpine:3"}, true, map[string]string{"cmd": ""},
			Action{Kind: RunImage, Image: "alpine:3"}, ""},
		{"run with a bad command", Action{Kind: RunImage, Image: "alpine:3"}, true, map[string]string{"cmd": "echo 'x"}, Action{},
			"run: command: unterminated ' quote in \"echo 'x\""},
		{"run without an image", Action{Kind: RunImage}, true, map[string]string{}, Action{}, "run: give an image reference, e.g. alpine:latest"},
		{"kernel file", Action{Kind: SetUpKernel}, true, map[string]string{"path": "/k/vmlinuz"}, Action{Kind: SetUpKernel, Kernel: types.KernelChoice{Path: "/k/vmlinuz"}}, ""},
		{"kernel url without sum", Action{Kind: SetUpKernel}, true, map[string]string{"url": "https://x/k.deb"}, Action{}, "kernel: a .deb URL needs its SHA-256"},
		{"kernel both", Action{Kind: SetUpKernel}, true, map[string]string{"url": "https://x/k.deb", "path": "/k"}, Action{}, "kernel: give a kernel file or a .deb URL, not both"},
		{"kernel neither", Action{Kind: SetUpKernel}, true, map[string]string{}, Action{}, "kernel: give a kernel file or a .deb URL"},
		{"share folder…", Action{Kind: ShareFolder, Container: "c", Name: "web"}, true, map[string]string{"path": " /Users/me/src "},
			Action{Kind: ShareFolder, HostPath: "/Users/me/src"}, ""},
		{"share folder, none chosen", Action{Kind: ShareFolder, Container: "c", Name: "web"}, true, map[string]string{"path": ""}, Action{}, "share: choose a folder"},
		{"share of a dropped folder needs none", Action{Kind: ShareFolder, Container: "c", HostPath: "/Users/me/src"}, false, nil, Action{}, ""},
		{"stop needs none", Action{Kind: StopContainer, Container: "c"}, false, nil, Action{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, ok := c.a.Dialog()
			if ok != c.dialog {
				t.Fatalf("Dialog() = %v, want %v", ok, c.dialog)
			}
			if !ok {
				return
			}
			if d.ChooseFolder != (c.a.Kind == ShareFolder) {
				t.Errorf("ChooseFolder = %v for %v", d.ChooseFolder, c.a.Kind)
			}
			for _, f := range d.Fields {
				if f.Key == "" || f.Label == "" {
					t.Errorf("field %+v has no key or label", f)
				}
			}
			got, err := c.a.WithInput(c.values)
			if c.err != "" {
				if err == nil || err.Error() != c.err || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("WithInput: %v, want invalid argument %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !actionsEqual(got, c.want) {
				t.Errorf("WithInput = %+v, want %+v", got, c.want)
			}
		})
	}
}

func actionsEqual(a, b Action) bool {
	return a.Kind == b.Kind && a.Image == b.Image && a.Ref == b.Ref && a.Run.Name == b.Run.Name &&
		slices.Equal(a.Run.Cmd, b.Run.Cmd) && a.Kernel == b.Kernel && a.HostPath == b.HostPath
}

func TestShellQuote(t *testing.T) {
	d := NewDispatcher(nil, NewState(nil), WithCLI("/Applications/Berth.app/Contents/MacOS/berth", "/Users/me/my berth"))
	got := d.command("shell", "it's")
	want := `/Applications/Berth.app/Contents/MacOS/berth --home '/Users/me/my berth' shell 'it'\''s'`
	if got != want {
		t.Errorf("command = %s, want %s", got, want)
	}
}

func TestPullAggregate(t *testing.T) {
	var p pullAggregate
	msg := func(id, status string, cur, total int64) jsonstream.Message {
		m := jsonstream.Message{ID: id, Status: status}
		if total > 0 {
			m.Progress = &jsonstream.Progress{Current: cur, Total: total}
		}
		return m
	}
	steps := []struct {
		m       jsonstream.Message
		changed bool
		want    Progress
	}{
		{jsonstream.Message{ID: "3", Status: "Pulling from library/alpine"}, false, Progress{Subject: "r"}},
		{msg("a", "Pulling fs layer", 0, 0), true, Progress{Subject: "r", Layers: 1}},
		{msg("b", "Pulling fs layer", 0, 0), true, Progress{Subject: "r", Layers: 2}},
		{msg("a", "Downloading", 50, 100), true, Progress{Subject: "r", Layers: 2}},
		{msg("b", "Already exists", 0, 0), true, Progress{Subject: "r", Current: 50, Total: 100, Layers: 2, LayersDone: 1}},
		{msg("a", "Downloading", 50, 100), false, Progress{Subject: "r", Current: 50, Total: 100, Layers: 2, LayersDone: 1}},
		{msg("a", "Pull complete", 0, 0), true, Progress{Subject: "r", Current: 100, Total: 100, Layers: 2, LayersDone: 2}},
	}
	for i, s := range steps {
		if got := p.add(s.m); got != s.changed {
			t.Errorf("step %d: changed %v, want %v", i, got, s.changed)
		}
		if got := p.progress("r"); got != s.want {
			t.Errorf("step %d: %+v, want %+v", i, got, s.want)
		}
	}
	if pc := p.progress("r").Percent(); pc != 100 {
		t.Errorf("percent %d", pc)
	}
}

func TestUserMessage(t *testing.T) {
	for in, want := range map[string]string{
		"Error response from daemon: pull r/x:1: manifest unknown: nope": "manifest unknown: nope",
		"Error response from daemon: no such image":                      "no such image",
		"pull of many words: x":                                          "pull of many words: x",
		"read progress: EOF":                                             "read progress: EOF",
	} {
		if got := userMessage(errors.New(in)); got != want {
			t.Errorf("userMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLocalActions: the actions the dispatcher answers without the
// engine.
func TestLocalActions(t *testing.T) {
	st := NewState(nil)
	d := NewDispatcher(nil, st)
	ctx := t.Context()
	for _, c := range []struct {
		a    Action
		want Result
		err  error
	}{
		{Action{Kind: OpenWindow}, Result{Window: BerthWindow}, nil},
		{Action{Kind: OpenSettings}, Result{Window: SettingsWindow}, nil},
		{Action{Kind: OpenInTerminal, Container: "0123456789abcdef", Name: "web"}, Result{TerminalCommand: "berth shell web"}, nil},
		{Action{Kind: Quit}, Result{Quit: true}, nil},
		{Action{Kind: OpenLog}, Result{}, errdefs.ErrNotFound},
		{Action{Kind: ShareFolder, Container: "c", Name: "web"}, Result{}, errdefs.ErrInvalidArgument},
		{Action{Kind: StopSharing, Container: "c", Name: "web", Share: Share{HostPath: "/Users/me/src"}}, Result{}, errdefs.ErrInvalidArgument},
		{Action{Kind: StopSharing, Container: "c", Name: "web", Share: Share{HostPath: "/Users/me/src", ContainerPath: "/src", AtCreate: true}}, Result{}, errdefs.ErrInvalidArgument},
		{Action{Kind: PullImage}, Result{}, errdefs.ErrInvalidArgument},
		{Action{Kind: RunImage}, Result{}, errdefs.ErrInvalidArgument},
		{Action{Kind: SetUpKernel}, Result{}, errdefs.ErrInvalidArgument},
		{Action{Kind: Kind(99)}, Result{}, errdefs.ErrInvalidArgument},
		{Action{Kind: SetLaunchAtLogin, Enable: true}, Result{}, errdefs.ErrUnavailable},
	} {
		got, err := d.Do(ctx, c.a)
		if got != c.want || (c.err == nil) != (err == nil) || (c.err != nil && !errors.Is(err, c.err)) {
			t.Errorf("Do(%v) = %+v, %v; want %+v, %v", c.a.Kind, got, err, c.want, c.err)
		}
	}
	if _, err := d.Do(ctx, Action{Kind: ShareFolder, Name: "web"}); err == nil || err.Error() != "share a folder with web: no folder chosen" {
		t.Errorf("share with no folder: %v", err)
	}
}

// stubLoginItem stands in for SMAppService.mainApp (macOS only): it
// registers at once, or needs the user's approval.
type stubLoginItem struct {
	status        settings.LoginStatus
	needsApproval bool
}

func (s *stubLoginItem) Status() settings.LoginStatus { return s.status }
func (s *stubLoginItem) Register() error {
	s.status = settings.LoginEnabled
	if s.needsApproval {
		s.status = settings.LoginRequiresApproval
	}
	return nil
}
func (s *stubLoginItem) Unregister() error { s.status = settings.LoginNotRegistered; return nil }

// TestLaunchAtLoginAction: the menu item's action through the
// Dispatcher, a real settings file, and the State's item after each.
func TestLaunchAtLoginAction(t *testing.T) {
	h, err := home.Resolve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := settings.NewStore(h)
	item := &stubLoginItem{}
	login := settings.NewLaunchAtLogin(store, item)
	st := NewState(nil)
	st.SetLaunchAtLogin(login.State())
	d := NewDispatcher(nil, st, WithLaunchAtLogin(login))
	click := func() Result {
		t.Helper()
		it := mustItem(t, Build(st.Snapshot(), now), "Launch at Login").enabled(t)
		r, err := d.Do(t.Context(), it.Action)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := click(); r.Message != "Berth opens at login" || mustItem(t, Build(st.Snapshot(), now), "Launch at Login").State != On {
		t.Errorf("turned on: %+v, %+v", r, st.Snapshot().LaunchAtLogin)
	}
	if saved, err := store.Load(); err != nil || !saved.LaunchAtLogin {
		t.Errorf("saved %+v, %v", saved, err)
	}
	if r := click(); r.Message != "Berth no longer opens at login" || mustItem(t, Build(st.Snapshot(), now), "Launch at Login").State != Off {
		t.Errorf("turned off: %+v", r)
	}
	item.needsApproval = true
	if r := click(); r.Message != settings.ReasonApproval || mustItem(t, Build(st.Snapshot(), now), "Launch at Login").State != Mixed {
		t.Errorf("needs approval: %+v", r)
	}
}
