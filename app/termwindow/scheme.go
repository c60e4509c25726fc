package termwindow

import (
	"errors"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	web "github.com/berthvm/berth/assets/web"
)

// Scheme and Host name the page's URLs: berth://terminal/PATH is the
// bundle's file PATH.
const (
	Scheme = "berth"
	Host   = "terminal"
)

// PageURL is the URL the window loads.
const PageURL = Scheme + "://" + Host + "/" + web.Entry

// Resource is the berth: scheme handler's answer to one request.
type Resource struct {
	// Status is an HTTP status code: 200, 404 or 503.
	Status int
	// MIMEType is the body's type (text types are UTF-8).
	MIMEType string
	Body     []byte
}

// Bundle answers the berth: scheme handler's requests from the web
// bundle.
type Bundle struct {
	open func() (fs.FS, error)
}

// NewBundle returns the Bundle of the bundle this binary embeds
// (web.FS).
func NewBundle() *Bundle { return &Bundle{open: web.FS} }

// NewBundleFS returns a Bundle of the files open returns; an error from
// open (web.ErrNotBuilt) is answered with a page that says it.
func NewBundleFS(open func() (fs.FS, error)) *Bundle { return &Bundle{open: open} }

// Serve answers a request for rawURL:
//   - berth://terminal/ and berth://terminal/PATH for a file of the
//     bundle → 200, the file, its MIME type (query and fragment ignored);
//   - any other scheme or host, a path that is not a plain relative file
//     name once the leading slash is gone (`..` or `.` elements, empty
//     elements, backslashes, any %-escape), a directory or a missing file
//     → 404;
//   - a binary without the bundle → 503 and an HTML page with
//     web.ErrNotBuilt's text, whatever the path.
func (b *Bundle) Serve(rawURL string) Resource {
	name, ok := bundlePath(rawURL)
	if !ok {
		return notFound(rawURL)
	}
	fsys, err := b.open()
	if err != nil {
		return errorPage(http.StatusServiceUnavailable, err)
	}
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isDir(fsys, name) {
			return notFound(rawURL)
		}
		return errorPage(http.StatusInternalServerError, fmt.Errorf("read %s from the web bundle: %w", name, err))
	}
	return Resource{Status: http.StatusOK, MIMEType: mimeType(name), Body: data}
}

// bundlePath returns the bundle file rawURL names, if it is one
// berth://terminal/ may serve.
func bundlePath(rawURL string) (string, bool) {
	u, err := url.Parse(rawURL)
	if err != nil || !strings.EqualFold(u.Scheme, Scheme) || !strings.EqualFold(u.Host, Host) || u.User != nil || u.Opaque != "" {
		return "", false
	}
	p := u.EscapedPath()
	// No escapes at all: the bundle's names are plain, and an encoded
	// slash or dot is only ever an attempt to get around the checks below.
	if strings.ContainsAny(p, `%\`) {
		return "", false
	}
	if p == "" || p == "/" {
		return web.Entry, true
	}
	name, ok := strings.CutPrefix(p, "/")
	if !ok || !fs.ValidPath(name) || path.Clean(name) != name {
		return "", false
	}
	return name, true
}

func isDir(fsys fs.FS, name string) bool {
	fi, err := fs.Stat(fsys, name)
	return err == nil && fi.IsDir()
}

func notFound(rawURL string) Resource {
	return errorPage(http.StatusNotFound, fmt.Errorf("%s is not part of Berth's terminal page", rawURL))
}

// errorPage is an HTML page saying err.
func errorPage(status int, err error) Resource {
	body := "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"color-scheme\" content=\"light dark\">" +
		"<title>Berth</title></head>\n<body style=\"font: 13px -apple-system, system-ui, sans-serif; margin: 2em\">\n<p>" +
		html.EscapeString(err.Error()) + "</p>\n</body></html>\n"
	return Resource{Status: status, MIMEType: "text/html", Body: []byte(body)}
}

// mimeType is the type of a bundle file by its extension: a fixed list,
// not the system's (mime.TypeByExtension reads /etc/mime.types), so that
// the page loads the same everywhere.
func mimeType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".html":
		return "text/html"
	case ".js", ".mjs":
		return "text/javascript"
	case ".css":
		return "text/css"
	case ".json", ".map":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".woff2":
		return "font/woff2"
	case ".wasm":
		return "application/wasm"
	case ".txt":
		return "text/plain"
	}
	return "application/octet-stream"
}

// Header is the response's header fields: its type (UTF-8 for text) and
// length, no sniffing, no caching (the bundle changes with the binary).
func (r Resource) Header() map[string]string {
	typ := r.MIMEType
	if strings.HasPrefix(typ, "text/") || typ == "application/json" {
		typ += "; charset=utf-8"
	}
	return map[string]string{
		"Content-Type":           typ,
		"Content-Length":         strconv.Itoa(len(r.Body)),
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
	}
}

// Navigation is what the window does with a navigation of its web view.
type Navigation int

// The navigations.
const (
	// NavigateCancel: nothing loads (any other scheme or host).
	NavigateCancel Navigation = iota
	// NavigateAllow: the page's own URLs, berth://HOST/… (the
	// terminal's berth://terminal/, the Berth window's berth://window/).
	NavigateAllow
	// NavigateBrowser: an http or https link (the page's web links
	// addon) opens in the user's browser, never in the window, which
	// must only ever show the page the "berth" handler trusts.
	NavigateBrowser
)

// DecideNavigationOn says what a web view whose page lives at
// berth://host/ (Host for the terminal window; the app's Berth window
// has its own) does with a navigation to rawURL: its own URLs load, web
// links go to the browser, anything else is cancelled.
func DecideNavigationOn(host, rawURL string) Navigation {
	u, err := url.Parse(rawURL)
	if err != nil {
		return NavigateCancel
	}
	switch strings.ToLower(u.Scheme) {
	case Scheme:
		if host != "" && strings.EqualFold(u.Host, host) && u.User == nil {
			return NavigateAllow
		}
	case "http", "https":
		if u.Host != "" {
			return NavigateBrowser
		}
	}
	return NavigateCancel
}
