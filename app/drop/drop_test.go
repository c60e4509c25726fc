package drop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berthvm/berth/app/menu"
	"github.com/berthvm/berth/engine/errdefs"
)

// tree makes, in a temporary folder (symlinks resolved, as the engine
// records shares): src/ with main.go and go.mod, docs/ with a.md,
// data/ (shared) with x.txt and sub/, and link → src. It returns its
// root.
func tree(t *testing.T) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"src", "docs", "data/sub"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"src/main.go", "src/go.mod", "docs/a.md", "data/x.txt"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "src"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestDecide(t *testing.T) {
	root := tree(t)
	p := func(rel string) string { return filepath.Join(root, rel) }
	web := menu.Container{ID: "web0123456789abcdef", Name: "web", Image: "nginx:alpine", State: "running",
		Shares: []menu.Share{{HostPath: p("data"), ContainerPath: "/mnt/data"}}}
	stopped := web
	stopped.State = "exited"
	share := func(c menu.Container, path string) menu.Action {
		return menu.Action{Kind: menu.ShareFolder, Container: c.ID, Name: c.Name, HostPath: path}
	}
	for _, c := range []struct {
		name      string
		paths     []string
		c         menu.Container
		share     []menu.Action
		ask       []string // each question's folder
		notes     []string
		recorded  bool
		errs      []string // what Err says, one line per path
		errClass  error
		askTitles []string
	}{
		{name: "one folder", paths: []string{p("src")}, c: web, share: []menu.Action{share(web, p("src"))}},
		{name: "several folders, one action each, a repeat once", paths: []string{p("src"), p("docs"), p("src") + "/"}, c: web,
			share: []menu.Action{share(web, p("src")), share(web, p("docs"))}},
		{name: "a folder and a link to it: once", paths: []string{p("src"), p("link")}, c: web, share: []menu.Action{share(web, p("src"))}},
		{name: "a file: ask for its folder", paths: []string{p("docs/a.md")}, c: web, ask: []string{p("docs")},
			askTitles: []string{"Share the folder that holds a.md?"}},
		{name: "two files of one folder: one question", paths: []string{p("src/main.go"), p("src/go.mod")}, c: web, ask: []string{p("src")},
			askTitles: []string{"Share the folder that holds main.go and go.mod?"}},
		{name: "a file whose folder is dropped too: no question", paths: []string{p("src/main.go"), p("src")}, c: web,
			share: []menu.Action{share(web, p("src"))}},
		{name: "a folder already shared", paths: []string{p("data")}, c: web,
			notes: []string{p("data") + " is already shared with web at /mnt/data."}},
		{name: "a folder inside a shared one", paths: []string{p("data/sub")}, c: web,
			notes: []string{p("data/sub") + " is already shared with web at /mnt/data/sub."}},
		{name: "a file in a shared folder: no question", paths: []string{p("data/x.txt")}, c: web,
			notes: []string{"x.txt is already in web at /mnt/data."}},
		{name: "a stopped container: recorded for its next start", paths: []string{p("src")}, c: stopped,
			share: []menu.Action{share(stopped, p("src"))}, recorded: true},
		{name: "a stopped container, nothing new: nothing recorded", paths: []string{p("data")}, c: stopped,
			notes: []string{p("data") + " is already shared with web at /mnt/data."}},
		{name: "a path that does not exist", paths: []string{p("gone"), p("src")}, c: web, share: []menu.Action{share(web, p("src"))},
			errs: []string{"share " + p("gone") + ": it no longer exists on this Mac"}, errClass: errdefs.ErrInvalidArgument},
		{name: "a relative path", paths: []string{"src"}, c: web, errs: []string{"share src: not an absolute path"}, errClass: errdefs.ErrInvalidArgument},
		{name: "nothing dropped", c: web, errs: []string{"share: nothing was dropped"}, errClass: errdefs.ErrInvalidArgument},
		{name: "a container being removed", paths: []string{p("src")}, c: menu.Container{ID: "x1", Name: "old", State: "removing"},
			errs: []string{"share with old: the container is removing; drop the folder onto another container"}, errClass: errdefs.ErrConflict},
		{name: "no container", paths: []string{p("src")}, errs: []string{"share: no container to share with"}, errClass: errdefs.ErrInvalidArgument},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.paths, c.c)
			if fmt.Sprintf("%+v", d.Share) != fmt.Sprintf("%+v", c.share) {
				t.Errorf("Share = %+v, want %+v", d.Share, c.share)
			}
			var ask, titles []string
			for _, q := range d.Ask {
				ask = append(ask, q.Action.HostPath)
				titles = append(titles, q.Title)
				if q.Action.Kind != menu.ShareFolder || q.Action.Container != c.c.ID || q.OK == "" ||
					!strings.Contains(q.Message, "/mnt/"+filepath.Base(q.Action.HostPath)) {
					t.Errorf("question %+v", q)
				}
			}
			if !slices.Equal(ask, c.ask) {
				t.Errorf("Ask for %q, want %q", ask, c.ask)
			}
			if c.askTitles != nil && !slices.Equal(titles, c.askTitles) {
				t.Errorf("questions %q, want %q", titles, c.askTitles)
			}
			if !slices.Equal(d.Notes, c.notes) {
				t.Errorf("Notes = %q, want %q", d.Notes, c.notes)
			}
			if (d.Recorded != "") != c.recorded {
				t.Errorf("Recorded = %q, want it set: %v", d.Recorded, c.recorded)
			}
			if c.errs == nil {
				if d.Err != nil {
					t.Errorf("Err = %v", d.Err)
				}
				return
			}
			if d.Err == nil || d.Err.Error() != strings.Join(c.errs, "\n") || !errors.Is(d.Err, c.errClass) {
				t.Errorf("Err = %v, want %q (%v)", d.Err, c.errs, c.errClass)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	d := Decision{Notes: []string{"a is already shared with web at /mnt/a."}, Recorded: "web is not running: …"}
	if got, isErr := d.Message(0); got != "a is already shared with web at /mnt/a." || isErr {
		t.Errorf("nothing shared: %q, %v", got, isErr)
	}
	if got, _ := d.Message(1); got != "a is already shared with web at /mnt/a.\nweb is not running: …" {
		t.Errorf("one shared: %q", got)
	}
	d.Err = errors.Join(errors.New("share /x: gone"), errors.New("share /y: gone"))
	if got, isErr := d.Message(0); !isErr || !strings.HasSuffix(got, "\nshare /x: gone\nshare /y: gone") {
		t.Errorf("with errors: %q, %v", got, isErr)
	}
	if got, _ := (Decision{}).Message(2); got != "" {
		t.Errorf("nothing to say: %q", got)
	}
}

func TestCandidatesAndFind(t *testing.T) {
	s := menu.Snapshot{Containers: []menu.Container{
		{ID: "aaa111", Name: "db", Image: "postgres:17", State: "exited"},
		{ID: "bbb222", Name: "web", Image: "nginx:alpine", State: "running"},
		{ID: "ccc333", Name: "old", Image: "alpine:3", State: "removing"},
		{ID: "aab444", Name: "job", Image: "alpine:3", State: "dead"},
	}}
	var titles []string
	for _, c := range Candidates(s) {
		titles = append(titles, c.Title)
	}
	if want := []string{"web — nginx:alpine", "db — postgres:17 (not running: from its next start)"}; !slices.Equal(titles, want) {
		t.Errorf("candidates %q, want %q", titles, want)
	}
	if len(Candidates(menu.Snapshot{})) != 0 || !errors.Is(ErrNoContainers, errdefs.ErrNotFound) {
		t.Error("no containers: want no candidates and a not-found error to show")
	}
	for ref, want := range map[string]string{"web": "bbb222", "/web": "bbb222", "bbb222": "bbb222", "bb": "bbb222", "aaa": "aaa111", "a": "", "nope": "", "": ""} {
		c, ok := Find(s, ref)
		if ok != (want != "") || c.ID != want {
			t.Errorf("Find(%q) = %q, %v; want %q", ref, c.ID, ok, want)
		}
	}
}

func TestSummary(t *testing.T) {
	web := menu.Container{ID: "web0123456789abcdef", Name: "web", State: "exited"}
	d := Decision{Notes: []string{"/a is already shared with web at /mnt/a."}, Recorded: "web is not running: the share is recorded and appears in it when it starts."}
	ok := menu.Result{Message: "Shared /b with web at /mnt/b (from its next start)"}
	fail := errors.New("Error response from daemon: share /c with web: no such folder")
	for _, c := range []struct {
		results     []menu.Result
		failed      []error
		title, text string
		isErr       bool
	}{
		{nil, nil, "Nothing shared with web", "/a is already shared with web at /mnt/a.", false},
		{[]menu.Result{ok}, nil, "Shared a folder with web",
			"Shared /b with web at /mnt/b (from its next start).\n/a is already shared with web at /mnt/a.\n" + d.Recorded, false},
		{[]menu.Result{ok, ok}, nil, "Shared 2 folders with web", "", false},
		{nil, []error{fail}, "Sharing with web failed", "share /c with web: no such folder\n/a is already shared with web at /mnt/a.", true},
		{[]menu.Result{ok}, []error{fail}, "Shared 1 of 2 folders with web", "", true},
	} {
		title, text, isErr := Summary(d, web, c.results, c.failed)
		if title != c.title || (c.text != "" && text != c.text) || isErr != c.isErr {
			t.Errorf("Summary(%d done, %d failed) = %q, %q, %v; want %q, %q, %v", len(c.results), len(c.failed), title, text, isErr, c.title, c.text, c.isErr)
		}
	}
}
