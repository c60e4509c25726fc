package termwindow

import (
	"errors"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	web "github.com/berthvm/berth/assets/web"
	"github.com/berthvm/berth/internal/testenv"
)

func testBundle() *Bundle {
	files := fstest.MapFS{
		"index.html":     {Data: []byte("<!doctype html><script src=app.js></script>")},
		"app.js":         {Data: []byte("console.log(1)")},
		"app.css":        {Data: []byte("body{}")},
		"font.woff2":     {Data: []byte("wOF2")},
		"blob.bin":       {Data: []byte{0, 1}},
		"sub/nested.css": {Data: []byte("p{}")},
	}
	return NewBundleFS(func() (fs.FS, error) { return files, nil })
}

func TestBundleServesFiles(t *testing.T) {
	b := testBundle()
	for _, tc := range []struct{ url, mime, body string }{
		{PageURL, "text/html", "<!doctype html>"},
		{"berth://terminal/", "text/html", "<!doctype html>"},
		{"berth://terminal", "text/html", "<!doctype html>"},
		{"BERTH://Terminal/index.html", "text/html", "<!doctype html>"},
		{"berth://terminal/index.html?x=1#frag", "text/html", "<!doctype html>"},
		{"berth://terminal/app.js", "text/javascript", "console.log(1)"},
		{"berth://terminal/app.css", "text/css", "body{}"},
		{"berth://terminal/font.woff2", "font/woff2", "wOF2"},
		{"berth://terminal/blob.bin", "application/octet-stream", "\x00\x01"},
		{"berth://terminal/sub/nested.css", "text/css", "p{}"},
	} {
		r := b.Serve(tc.url)
		if r.Status != http.StatusOK || r.MIMEType != tc.mime || !strings.HasPrefix(string(r.Body), tc.body) {
			t.Errorf("Serve(%q) = %d %s %q, want 200 %s %q…", tc.url, r.Status, r.MIMEType, r.Body, tc.mime, tc.body)
		}
	}
}

func TestBundleRefusesEverythingElse(t *testing.T) {
	b := testBundle()
	for _, u := range []string{
		"berth://other/index.html",
		"http://terminal/index.html",
		"file:///etc/passwd",
		"berth:///index.html",
		"berth:terminal/index.html",
		"berth://user@terminal/index.html",
		"berth://terminal/../index.html",
		"berth://terminal/sub/../index.html",
		"berth://terminal/./index.html",
		"berth://terminal//etc/passwd",
		"berth://terminal/%2e%2e/index.html",
		"berth://terminal/%2E%2E%2Fetc%2Fpasswd",
		"berth://terminal/sub%2fnested.css",
		"berth://terminal/app%2ejs",
		`berth://terminal/..\index.html`,
		`berth://terminal/sub\nested.css`,
		"berth://terminal/sub",
		"berth://terminal/sub/",
		"berth://terminal/missing.js",
		"berth://terminal/index.html/",
		"::not a url",
	} {
		r := b.Serve(u)
		if r.Status != http.StatusNotFound || r.MIMEType != "text/html" || !strings.Contains(string(r.Body), "is not part of Berth") {
			t.Errorf("Serve(%q) = %d %s %q, want 404 and a page saying so", u, r.Status, r.MIMEType, r.Body)
		}
	}
}

func TestBundleNotBuilt(t *testing.T) {
	b := NewBundleFS(func() (fs.FS, error) { return nil, web.ErrNotBuilt })
	for _, u := range []string{PageURL, "berth://terminal/app.js"} {
		r := b.Serve(u)
		if r.Status != http.StatusServiceUnavailable || r.MIMEType != "text/html" {
			t.Fatalf("Serve(%q) without a bundle = %d %s, want 503 text/html", u, r.Status, r.MIMEType)
		}
		if !strings.Contains(string(r.Body), "<p>"+web.ErrNotBuilt.Error()+"</p>") {
			t.Fatalf("Serve(%q) without a bundle: %q does not say %q", u, r.Body, web.ErrNotBuilt)
		}
	}
	// Still a 404 for what would never be served.
	if r := b.Serve("berth://terminal/../x"); r.Status != http.StatusNotFound {
		t.Fatalf("an escape without a bundle = %d, want 404", r.Status)
	}
}

func TestBundleErrorIsEscaped(t *testing.T) {
	b := NewBundleFS(func() (fs.FS, error) { return nil, errors.New("<script>alert(1)</script> & more") })
	r := b.Serve(PageURL)
	if strings.Contains(string(r.Body), "<script>") || !strings.Contains(string(r.Body), "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more") {
		t.Fatalf("error page %q does not escape the error", r.Body)
	}
}

// TestEmbeddedBundle serves the bundle this binary embeds: every file
// index.html loads, with its type, when `make web` ran; else the
// not-built page.
func TestEmbeddedBundle(t *testing.T) {
	b := NewBundle()
	page := b.Serve(PageURL)
	if _, err := web.FS(); errors.Is(err, web.ErrNotBuilt) {
		if page.Status != http.StatusServiceUnavailable || !strings.Contains(string(page.Body), web.ErrNotBuilt.Error()) {
			t.Fatalf("no bundle: Serve(%s) = %d %q, want 503 with web.ErrNotBuilt", PageURL, page.Status, page.Body)
		}
		testenv.Unavailable(t, "the web bundle is not built (make web): checked the not-built page only")
	}
	if page.Status != http.StatusOK || page.MIMEType != "text/html" {
		t.Fatalf("Serve(%s) = %d %s", PageURL, page.Status, page.MIMEType)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^":]+)"`).FindAllStringSubmatch(string(page.Body), -1)
	if len(refs) < 2 {
		t.Fatalf("index.html loads %d files, expected its script and styles: %s", len(refs), page.Body)
	}
	for _, ref := range refs {
		r := b.Serve("berth://terminal/" + ref[1])
		want := mimeType(ref[1])
		if r.Status != http.StatusOK || r.MIMEType != want || len(r.Body) == 0 {
			t.Errorf("index.html's %s: %d %s, %d bytes; want 200 %s", ref[1], r.Status, r.MIMEType, len(r.Body), want)
		}
	}
}

func TestResourceHeader(t *testing.T) {
	for _, tc := range []struct{ mime, want string }{
		{"text/html", "text/html; charset=utf-8"},
		{"text/javascript", "text/javascript; charset=utf-8"},
		{"application/json", "application/json; charset=utf-8"},
		{"font/woff2", "font/woff2"},
	} {
		h := Resource{Status: 200, MIMEType: tc.mime, Body: []byte("12345")}.Header()
		if h["Content-Type"] != tc.want || h["Content-Length"] != "5" || h["X-Content-Type-Options"] != "nosniff" {
			t.Errorf("Header of %s: %v, want Content-Type %q, length 5, nosniff", tc.mime, h, tc.want)
		}
	}
}

func TestDecideNavigation(t *testing.T) {
	for u, want := range map[string]Navigation{
		PageURL:                           NavigateAllow,
		"berth://terminal/app.js":         NavigateAllow,
		"berth://terminal/../x":           NavigateAllow, // the scheme handler answers 404
		"berth://other/index.html":        NavigateCancel,
		"berth://x@terminal/":             NavigateCancel,
		"https://example.com/docs?q=1":    NavigateBrowser,
		"HTTP://example.com/":             NavigateBrowser,
		"http:///nohost":                  NavigateCancel,
		"file:///etc/passwd":              NavigateCancel,
		"javascript:alert(1)":             NavigateCancel,
		"about:blank":                     NavigateCancel,
		"data:text/html,<h1>x</h1>":       NavigateCancel,
		"::bad":                           NavigateCancel,
		"ftp://example.com/file":          NavigateCancel,
		"http://127.0.0.1:8080/terminal/": NavigateBrowser,
	} {
		if got := DecideNavigationOn(Host, u); got != want {
			t.Errorf("DecideNavigationOn(%q, %q) = %d, want %d", Host, u, got, want)
		}
	}
	// Another host (the app's Berth window, berth://window/): its own
	// URLs only, never the terminal's; web links as before.
	for u, want := range map[string]Navigation{
		"berth://window/":                NavigateAllow,
		"BERTH://Window/ui/api/events":   NavigateAllow,
		"berth://terminal/":              NavigateCancel,
		"berth://x@window/":              NavigateCancel,
		"https://example.com/":           NavigateBrowser,
		"javascript:location='berth://'": NavigateCancel,
	} {
		if got := DecideNavigationOn("window", u); got != want {
			t.Errorf("DecideNavigationOn(window, %q) = %d, want %d", u, got, want)
		}
	}
	if got := DecideNavigationOn("", "berth:///"); got != NavigateCancel {
		t.Errorf("DecideNavigationOn with no host allowed berth:///: %d", got)
	}
}
