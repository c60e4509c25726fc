package api

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// Encoded slashes stay inside their segment, the version prefix is cut
// from the raw path, and nothing is ever redirected.
func TestRoutingOnEscapedPath(t *testing.T) {
	cases := []struct {
		method, path string
		code         int
		msg, allow   string
	}{
		// Once decoded this would climb to /images/json; it is one
		// container-name segment, which only DELETE serves.
		{"GET", "/v1.47/containers/json%2F..%2F..%2Fimages%2Fjson", 405, "method not allowed", "DELETE"},
		{"GET", "/containers/json%2F..%2F..%2Fimages%2Fjson", 405, "method not allowed", "DELETE"},
		{"DELETE", "/v1.47/containers/json%2F..%2F..%2Fimages%2Fjson", 404, "No such container: json/../../images/json", ""},
		{"POST", "/v1.47/containers/%2Fx/start", 404, "No such container: /x", ""},
		{"POST", "/containers/%2Fx/start", 404, "No such container: /x", ""},
		{"GET", "/v1.47/containers/%2Fweb/json", 404, "No such container: /web", ""},
		{"GET", "/v1.47/images/a%2Fb/json", 404, "No such image: a/b", ""},
		// Paths that are not clean are not found, never redirected.
		{"GET", "/v1.47/containers/../images/json", 404, "page not found", ""},
		{"GET", "/containers//json", 404, "page not found", ""},
		{"GET", "/containers/json/", 404, "page not found", ""},
		{"GET", "/images", 404, "page not found", ""},
		{"GET", "/v1.47/containers/web/json", 200, "", ""},
	}
	for _, c := range cases {
		rec := serve(t, newFakeBackend(), c.method, c.path, nil)
		if rec.Code >= 300 && rec.Code < 400 {
			t.Errorf("%s %s: redirected (%d to %q)", c.method, c.path, rec.Code, rec.Header().Get("Location"))
			continue
		}
		if rec.Code != c.code {
			t.Errorf("%s %s: status %d, want %d (%s)", c.method, c.path, rec.Code, c.code, rec.Body)
			continue
		}
		if c.msg != "" && !strings.Contains(errorMessage(t, rec), c.msg) {
			t.Errorf("%s %s: message %q, want it to contain %q", c.method, c.path, errorMessage(t, rec), c.msg)
		}
		if got := rec.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
}

func TestWrongMethodIs405WithAllow(t *testing.T) {
	cases := []struct{ method, path, allow string }{
		// DELETE /containers/{id} serves a container named "json".
		{"PUT", "/containers/json", "GET, HEAD, DELETE"},
		{"PUT", "/v1.47/containers/json", "GET, HEAD, DELETE"},
		{"POST", "/_ping", "GET, HEAD"},
		{"DELETE", "/version", "GET, HEAD"},
		{"GET", "/containers/create", "POST, DELETE"},
		{"GET", "/containers/web/start", "POST"},
		{"POST", "/berth/kernel", "GET, HEAD, PUT"},
		{"PUT", "/images/alpine", "GET, HEAD, POST, DELETE"},
	}
	for _, c := range cases {
		rec := serve(t, newFakeBackend(), c.method, c.path, nil)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: status %d, want 405 (%s)", c.method, c.path, rec.Code, rec.Body)
			continue
		}
		if got := rec.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
		if msg := errorMessage(t, rec); !strings.Contains(msg, "method not allowed") {
			t.Errorf("%s %s: message %q", c.method, c.path, msg)
		}
	}
}

func TestVersionPrefix(t *testing.T) {
	cases := []struct {
		path string
		code int
		msg  string
	}{
		{"/v99999999999999999999.1/_ping", 400, "client version 99999999999999999999.1 is too new. Maximum supported API version is 1.47"},
		{"/v1.99999999999999999999/_ping", 400, "is too new"},
		{"/v1/_ping", 400, "client version 1 is too old. Minimum supported API version is 1.44"},
		{"/v1.43.9/_ping", 400, "too old"},
		{"/v1.47.0/_ping", 200, ""},
		{"/v1.0047/_ping", 200, ""},
		{"/v1.45/_ping", 200, ""},
		{"/vx.1/_ping", 404, "page not found"},
		{"/v1./_ping", 404, "page not found"},
		{"/v.47/_ping", 404, "page not found"},
		{"/v1.47", 404, "page not found"},
	}
	for _, c := range cases {
		rec := serve(t, newFakeBackend(), "GET", c.path, nil)
		if rec.Code != c.code {
			t.Errorf("%s: status %d, want %d (%s)", c.path, rec.Code, c.code, rec.Body)
			continue
		}
		if c.msg != "" && !strings.Contains(errorMessage(t, rec), c.msg) {
			t.Errorf("%s: message %q, want %q", c.path, errorMessage(t, rec), c.msg)
		}
	}
}

// countingReader is an endless body of spaces that counts what is read.
type countingReader struct{ n atomic.Int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// Every endpoint that reads a JSON body reads at most maxBody of it and
// answers 413 beyond, whether or not the size was announced.
func TestBodiesAreBounded(t *testing.T) {
	endpoints := []struct{ method, path string }{
		{"POST", "/containers/create"},
		{"POST", "/containers/web/exec"},
		{"POST", "/exec/exec1/start"},
		{"PUT", "/berth/kernel"},
		{"POST", "/berth/images/unpack"},
		{"POST", "/auth"},
	}
	for _, e := range endpoints {
		for _, announced := range []bool{true, false} {
			body := &countingReader{}
			var r io.Reader = io.LimitReader(body, 200<<20)
			if announced {
				r = strings.NewReader(strings.Repeat(" ", maxBody+1))
			}
			rec := serve(t, newFakeBackend(), e.method, e.path, r)
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Errorf("%s %s (announced %v): status %d, want 413 (%s)", e.method, e.path, announced, rec.Code, rec.Body)
				continue
			}
			if msg := errorMessage(t, rec); !strings.Contains(msg, "request body too large: the limit is 4 MiB") {
				t.Errorf("%s %s: message %q", e.method, e.path, msg)
			}
			if n := body.n.Load(); n > 2*maxBody {
				t.Errorf("%s %s: read %d bytes of the body, want at most about %d", e.method, e.path, n, maxBody)
			}
		}
	}
}

func TestMalformedBodies(t *testing.T) {
	cases := []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"POST", "/exec/exec1/start", `{"Detach":true} garbage`, 400, "exec start: malformed request body"},
		{"POST", "/exec/exec1/start", `{"Detach":true}{}`, 400, "unexpected data after the JSON value"},
		{"POST", "/containers/create", `{"Image":"alpine"}]`, 400, "create container: malformed request body"},
		{"POST", "/containers/create", ``, 400, "create container: the request body is empty"},
		{"POST", "/containers/create", `{"Image":`, 400, "malformed request body: unexpected EOF"},
		{"POST", "/containers/create", `[1]`, 400, "malformed request body"},
		{"PUT", "/berth/kernel", `{"path":"/k"} x`, 400, "set kernel: malformed request body"},
		{"POST", "/auth", `{"username":"u"} {`, 400, "login: malformed request body"},
		// Whitespace after the value is fine.
		{"POST", "/exec/exec1/start", "{\"Detach\":true}\n\t ", 200, ""},
	}
	for _, c := range cases {
		b := newFakeBackend()
		b.execs.byID["exec1"] = fakeExec()
		rec := serve(t, b, c.method, c.path, strings.NewReader(c.body))
		if rec.Code != c.code {
			t.Errorf("%s %s %q: status %d, want %d (%s)", c.method, c.path, c.body, rec.Code, c.code, rec.Body)
			continue
		}
		if c.msg != "" && !strings.Contains(errorMessage(t, rec), c.msg) {
			t.Errorf("%s %s %q: message %q, want %q", c.method, c.path, c.body, errorMessage(t, rec), c.msg)
		}
	}
}
