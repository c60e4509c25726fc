package appwindow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Scheme and Host name the page's URLs: berth://window/PATH.
const (
	Scheme = "berth"
	Host   = "window"
)

// PageURL is the URL the window loads.
const PageURL = Scheme + "://" + Host + "/"

// maxBody bounds a request body from the page (the engine's own limits
// are lower; this only keeps a runaway page from holding memory).
const maxBody = 8 << 20

// NewRequest is the request a scheme task carries, as an *http.Request
// for ctx: berth://window/… only (any other scheme or host, user info or
// opaque URL is an error), with its header fields and body.
func NewRequest(ctx context.Context, method, rawURL string, header map[string]string, body []byte) (*http.Request, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("berth window request %q: %w", rawURL, err)
	}
	if !strings.EqualFold(u.Scheme, Scheme) || !strings.EqualFold(u.Host, Host) || u.User != nil || u.Opaque != "" {
		return nil, fmt.Errorf("berth window request %q: not a berth://%s/ URL", rawURL, Host)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("berth window request %s %s: body of %d bytes (at most %d)", method, u.Path, len(body), maxBody)
	}
	if method == "" {
		method = http.MethodGet
	}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("berth window request %s %s: %w", method, rawURL, err)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	if len(body) == 0 {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	return r, nil
}

// Task is where Serve sends the answer: a WKURLSchemeTask, through the
// main queue. Serve calls Respond once, then Data any number of times,
// then Finish; Fail instead, at any point, ends the task with an error.
type Task interface {
	Respond(status int, header map[string]string)
	Data(b []byte)
	Finish()
	Fail(err error)
}

// Serve runs h for r and streams its answer to t: the head at the first
// write (or when h returns), each write as it happens, then the end. A
// handler that writes nothing answers 200 with an empty body. When r's
// context ends first (the web view stopped the task), Serve returns
// without telling t anything more.
func Serve(h http.Handler, r *http.Request, t Task) {
	w := &streamWriter{task: t, header: http.Header{}, ctx: r.Context()}
	defer func() {
		if p := recover(); p != nil {
			w.fail(fmt.Errorf("berth window: %s %s: internal error: %v", r.Method, r.URL.Path, p))
			return
		}
		w.finish()
	}()
	h.ServeHTTP(w, r)
}

// streamWriter is an http.ResponseWriter (and http.Flusher) over a Task.
type streamWriter struct {
	task   Task
	header http.Header
	ctx    context.Context

	mu     sync.Mutex
	status int // 0 until the head is sent
	done   bool
}

func (w *streamWriter) Header() http.Header { return w.header }

// WriteHeader sends the head once; later calls are ignored, as
// net/http does (1xx statuses are not passed on).
func (w *streamWriter) WriteHeader(status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.headLocked(status)
}

func (w *streamWriter) headLocked(status int) {
	if w.status != 0 || w.done || status < 200 {
		return
	}
	w.status = status
	if w.ctx.Err() != nil {
		return
	}
	fields := make(map[string]string, len(w.header))
	for k, v := range w.header {
		fields[k] = strings.Join(v, ", ")
	}
	w.task.Respond(status, fields)
}

// Write sends b now (a copy: the Task may hand it to another goroutine).
func (w *streamWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, errTaskEnded
	}
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	w.headLocked(http.StatusOK)
	if len(b) > 0 {
		w.task.Data(bytes.Clone(b))
	}
	return len(b), nil
}

// Flush has nothing to do: every Write is sent at once.
func (w *streamWriter) Flush() {}

func (w *streamWriter) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.ctx.Err() != nil {
		w.done = true
		return
	}
	if w.status == 0 {
		if w.header.Get("Content-Length") == "" {
			w.header.Set("Content-Length", strconv.Itoa(0))
		}
		w.headLocked(http.StatusOK)
	}
	w.done = true
	w.task.Finish()
}

func (w *streamWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.ctx.Err() != nil {
		w.done = true
		return
	}
	w.done = true
	w.task.Fail(err)
}

var errTaskEnded = errors.New("berth window: the response has ended")

// Hooks are what the page's script messages, and drops on the window,
// ask of the app. All are called on the main queue.
type Hooks struct {
	// OpenShell opens a terminal window on the container with this ID.
	OpenShell func(containerID string)
	// Drop takes the paths of Finder items dropped on the window and the
	// container whose row they were dropped on (DropTarget of the
	// page's answer to RowAtScript): "" when the drop missed every
	// container row. Nil: the window takes no drops.
	Drop func(containerID string, paths []string)
}

// RowAtScript is the script that asks the page which container row is
// at (x, y), in the page's CSS pixels from the top left of its
// viewport: the page's window.berthRowAt answers the row's container ID,
// or "" (also when the page has no such function yet, e.g. still
// loading).
func RowAtScript(x, y float64) string {
	f := func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			v = -1
		}
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return `(typeof window.berthRowAt === "function" ? String(window.berthRowAt(` + f(x) + `, ` + f(y) + `) ?? "") : "")`
}

// DropTarget is the container a drop goes to, from the page's answer to
// RowAtScript: a container ID, or "" for anything else.
func DropTarget(answer string) string {
	if !validID(answer) {
		return ""
	}
	return answer
}

// Receive routes one message the page posted to
// window.webkit.messageHandlers.berth ({t, d}): "shell" with a container
// ID opens a terminal window on it. Anything else is an error naming it.
func Receive(t, d string, h Hooks) error {
	switch t {
	case "shell":
		if !validID(d) {
			return fmt.Errorf("berth window: shell for %q: not a container ID or name", d)
		}
		if h.OpenShell == nil {
			return errors.New("berth window: shell: this app opens no terminal windows")
		}
		h.OpenShell(d)
		return nil
	}
	return fmt.Errorf("berth window: unknown message %q", t)
}

// validID is a container ID or name as the page sends it: Docker's name
// characters, at most 128 of them.
func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
