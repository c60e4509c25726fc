package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/system"
)

func do(t *testing.T, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	return serve(t, newFakeBackend(), method, path, nil)
}

func TestPingHeaders(t *testing.T) {
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		for _, p := range []string{"/_ping", "/v1.44/_ping", "/v1.47/_ping"} {
			rec := do(t, m, p)
			if rec.Code != 200 {
				t.Fatalf("%s %s: %d", m, p, rec.Code)
			}
			if got := rec.Header().Get("Api-Version"); got != "1.47" {
				t.Errorf("%s %s: Api-Version %q", m, p, got)
			}
			if got := rec.Header().Get("Ostype"); got != "linux" {
				t.Errorf("%s %s: Ostype %q", m, p, got)
			}
			wantBody := "OK"
			if m == http.MethodHead {
				wantBody = ""
			}
			if rec.Body.String() != wantBody {
				t.Errorf("%s %s: body %q", m, p, rec.Body.String())
			}
		}
	}
}

func TestVersionRange(t *testing.T) {
	cases := []struct {
		path string
		code int
		msg  string
	}{
		{"/v1.43/version", 400, "client version 1.43 is too old. Minimum supported API version is 1.44"},
		{"/v1.48/version", 400, "client version 1.48 is too new. Maximum supported API version is 1.47"},
		{"/v2.0/version", 400, "too new"},
		{"/v1.44/version", 200, ""},
		{"/v1.47/version", 200, ""},
		{"/version", 200, ""},
	}
	for _, c := range cases {
		rec := do(t, http.MethodGet, c.path)
		if rec.Code != c.code {
			t.Errorf("%s: status %d, want %d (%s)", c.path, rec.Code, c.code, rec.Body)
			continue
		}
		if c.code != 200 {
			var e struct{ Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.Contains(e.Message, c.msg) {
				t.Errorf("%s: body %s, want message containing %q", c.path, rec.Body, c.msg)
			}
			continue
		}
		var v system.VersionResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if v.Version != "9.9.9" || v.APIVersion != "1.47" || v.MinAPIVersion != "1.44" || v.Os != "linux" || v.KernelVersion != "6.1.0-test" {
			t.Errorf("%s: %+v", c.path, v)
		}
	}
}

func TestUnknownPathIsJSON404(t *testing.T) {
	for _, p := range []string{"/nope", "/v1.47/nope", "/v1.47"} {
		rec := do(t, http.MethodGet, p)
		var e struct{ Message string }
		if rec.Code != 404 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Message != "page not found" {
			t.Errorf("%s: %d %s", p, rec.Code, rec.Body)
		}
	}
}

func TestInfo(t *testing.T) {
	rec := do(t, http.MethodGet, "/v1.47/info")
	var info system.Info
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &info) != nil {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if info.OSType != "linux" || info.ServerVersion != "9.9.9" || info.LoggingDriver != "json-file" || info.Architecture != "arm64" {
		t.Errorf("info: %+v", info)
	}
}
