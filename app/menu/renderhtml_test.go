package menu

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pictureSnapshot is the state docs/menu.png shows: two running
// containers with IPs, one of them sharing a folder, two images and the
// example plugin's menu entry.
func pictureSnapshot() Snapshot {
	web := running("web", "nginx:alpine", "10.88.0.2", 5*time.Minute)
	dev := running("dev", "golang:1.26", "10.88.0.3", 2*time.Hour)
	dev.Shares = []Share{{HostPath: "/Users/me/src/app", ContainerPath: "/mnt/app"}}
	return Snapshot{
		Engine: up, Kernel: kernel,
		Containers: []Container{web, dev},
		Images:     []Image{alpine, nginx},
		Plugins:    []PluginEntry{{Plugin: "top", Title: "Container Activity (top)"}},
	}
}

// TestRenderHTML renders the picture's menu to HTML and compares it with
// testdata/menu.html (make screenshots turns that page into docs/menu.png
// and docs/menu-dark.png); go test -run TestRenderHTML -update rewrites
// it. It also checks the page's shape: every item of the model is there
// once, in order, disabled ones marked, check marks, key equivalents,
// submenus nested under their items, text escaped.
func TestRenderHTML(t *testing.T) {
	m := Build(pictureSnapshot(), now)
	got := RenderHTML(m, "Berth menu")
	p := filepath.Join("testdata", "menu.html")
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test -run TestRenderHTML -update writes it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the menu rendered now (go test -run TestRenderHTML -update rewrites it); now:\n%s", p, got)
	}

	// The titles, in order, are the model's, depth first.
	var titles []string
	var walk func([]Item)
	walk = func(items []Item) {
		for _, it := range items {
			if !it.Separator {
				titles = append(titles, it.Title)
			}
			walk(it.Submenu)
		}
	}
	walk(m.Items)
	text := regexp.MustCompile(`<(?:span class="title"|div class="header" role="presentation")>([^<]*)<`)
	var shown []string
	for _, s := range text.FindAllStringSubmatch(got, -1) {
		shown = append(shown, unescape(s[1]))
	}
	if strings.Join(shown, "\n") != strings.Join(titles, "\n") {
		t.Errorf("titles on the page:\n%s\nwant the model's:\n%s", strings.Join(shown, "\n"), strings.Join(titles, "\n"))
	}
	for _, want := range []string{
		`<div class="item" role="menuitem" title="Asks: Remove web? It is running: it is stopped, and its files are deleted."><span class="check"></span><span class="title">Remove…</span></div>`,
		`<div class="item" role="menuitem" title="Running · up 5 minutes"><span class="check">✓</span><span class="title">web — nginx:alpine</span><span class="arrow">›</span></div>`,
		`<div class="item disabled" role="menuitem" aria-disabled="true"><span class="check"></span><span class="title">IP: 10.88.0.2</span></div>`,
		`<span class="title">Quit Berth</span><span class="key">⌘Q</span>`,
		`<div class="item" role="menuitem" title="berth top"><span class="check"></span><span class="title">Container Activity (top)</span></div>`,
		`<div class="header" role="presentation">Plugins</div>`,
		`<span class="title">/Users/me/src/app → /mnt/app</span>`,
		`<div class="sep" role="separator"></div>`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	// Submenus nest: the share's Stop Sharing is in the panel right
	// under the share's item.
	nested := regexp.MustCompile(`/Users/me/src/app → /mnt/app</span><span class="arrow">›</span></div>\n\s*<div class="menu submenu" role="menu">\n\s*<div class="item" role="menuitem"><span class="check"></span><span class="title">Stop Sharing</span></div>\n\s*</div>\n`)
	if !nested.MatchString(got) {
		t.Errorf("the share's Stop Sharing is not in a panel under it")
	}
	if n := strings.Count(got, `<div class="menu submenu" role="menu">`); n != countSubmenus(m.Items) {
		t.Errorf("%d submenus drawn, want %d", n, countSubmenus(m.Items))
	}

	// Text is escaped: an image named with markup stays text.
	odd := RenderHTML(Build(Snapshot{Engine: up, Kernel: kernel, Images: []Image{{ID: "sha256:1", Refs: []string{`<b>"x"&y</b>:1`}}}}, now), `a<b`)
	if strings.Contains(odd, "<b>") || !strings.Contains(odd, "&lt;b&gt;&#34;x&#34;&amp;y&lt;/b&gt;:1") || !strings.Contains(odd, "<title>a&lt;b</title>") {
		t.Errorf("markup in a title is not escaped:\n%s", odd)
	}
}

func countSubmenus(items []Item) int {
	n := 0
	for _, it := range items {
		if len(it.Submenu) > 0 {
			n += 1 + countSubmenus(it.Submenu)
		}
	}
	return n
}

func unescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&amp;", "&").Replace(s)
}
