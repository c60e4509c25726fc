package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var fuzzMethods = []string{"GET", "POST", "PUT", "DELETE", "HEAD"}

// FuzzRequest sends arbitrary requests (method, path, query, body) through
// the real handler on fakes: routing on the escaped path, the version
// prefix, query parsing (filters, all, limit, force, t, h/w, since/until,
// tail, condition, platform...) and body decoding (create bodies with any
// HostConfig). Whatever arrives, the API never panics, never redirects,
// answers every error as {"message": "..."} and fails with a 5xx only
// where the recorder cannot be hijacked.
//
//	go test ./engine/api -run '^$' -fuzz FuzzRequest -fuzztime 30s
func FuzzRequest(f *testing.F) {
	seeds := []struct {
		method      byte
		path, query string
		body        string
	}{
		{1, "/v1.47/containers/create", "name=x", dockerRunBody},
		{1, "/containers/create", "", `{"Image":"alpine","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"8080"}]},"Binds":["/a:/b"]}}`},
		{1, "/containers/create", "", `{"Image":"alpine","WorkingDir":"x","HostConfig":{"RestartPolicy":{"Name":"always"}}}`},
		{0, "/v1.47/containers/json", `all=1&limit=2&filters={"status":{"exited":true},"label":["a=b"]}`, ""},
		{0, "/v1.47/containers/json%2F..%2F..%2Fimages%2Fjson", "", ""},
		{1, "/v1.47/containers/%2Fx/start", "", ""},
		{0, "/v99999999999999999999.1/_ping", "", ""},
		{2, "/containers/json", "", ""},
		{1, "/_ping", "", ""},
		{0, "/images/json", `filters={"dangling":["true"],"reference":{"alpine":true}}`, ""},
		{3, "/images/alpine", "force=1", ""},
		{1, "/images/create", "fromImage=alpine&tag=3.20&platform=linux/arm64", ""},
		{1, "/images/alpine/tag", "repo=me/app&tag=1", ""},
		{1, "/containers/web/stop", "t=5&signal=TERM", ""},
		{1, "/containers/web/resize", "h=24&w=80", ""},
		{0, "/containers/web/logs", "stdout=1&stderr=1&tail=2&since=1.5&until=99&timestamps=1", ""},
		{1, "/containers/job/wait", "condition=next-exit", ""},
		{1, "/containers/web/exec", "", `{"Cmd":["ls"],"ConsoleSize":[1,2]}`},
		{1, "/exec/exec1/start", "", `{"Detach":true,"ConsoleSize":[3,4]}`},
		{0, "/exec/exec1/json", "", ""},
		{0, "/events", `since=1&until=2&filters={"type":["container"]}`, ""},
		{1, "/auth", "", `{"username":"u","password":"secret"}`},
		{2, "/berth/kernel", "", `{"path":"/k"} x`},
		{1, "/berth/containers/web/terminals", "", `{"cmd":["top"],"user":"u","workdir":"/","detach":true}`},
		{1, "/berth/containers/job/terminals", "", ""},
		{1, "/containers/prune", `filters={"label":{"x":true}}`, ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method byte, path, query string, body []byte) {
		// Streaming endpoints (events, logs, wait) end with the request.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		req, err := http.NewRequestWithContext(ctx, m, "http://berth"+path+"?"+query, bytes.NewReader(body))
		if err != nil || !strings.HasPrefix(path, "/") {
			return // not a request a client can send
		}
		b := newFakeBackend()
		b.execs.byID["exec1"] = fakeExec()
		rec := httptest.NewRecorder()
		NewServer(b, WithLogger(discardLogger())).ServeHTTP(rec, req)

		code := rec.Code
		if code >= 300 && code < 400 && code != http.StatusNotModified {
			t.Fatalf("%s %s?%s: redirected (%d to %q)", m, path, query, code, rec.Header().Get("Location"))
		}
		if code < 400 {
			return
		}
		var e struct{ Message string }
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Message == "" {
			t.Fatalf("%s %s?%s: %d with body %q, want {\"message\": ...}", m, path, query, code, rec.Body)
		}
		if code >= 500 && !strings.Contains(e.Message, "cannot be hijacked") {
			t.Fatalf("%s %s?%s: %d %s", m, path, query, code, e.Message)
		}
	})
}
