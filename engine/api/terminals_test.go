package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/api/types"
)

// TestTerminalOpen: POST /berth/containers/{id}/terminals answers 201
// with the session, 404 for a missing container, 409 for a stopped one,
// 400 for a malformed body; the body is optional.
func TestTerminalOpen(t *testing.T) {
	rec := serve(t, newFakeBackend(), "POST", "/berth/containers/web/terminals", strings.NewReader(`{"cmd":["top","-b"],"user":"u"}`))
	var got types.Terminal
	if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &got) != nil {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if got.ID != "session-web-top_-b" || !strings.Contains(got.URL, "#token=") {
		t.Errorf("got %+v", got)
	}
	if rec := serve(t, newFakeBackend(), "POST", "/berth/containers/web/terminals", nil); rec.Code != 201 {
		t.Errorf("no body: %d %s", rec.Code, rec.Body)
	}
	check(t, "missing", serve(t, newFakeBackend(), "POST", "/berth/containers/nope/terminals", nil), 404, "No such container: nope")
	check(t, "stopped", serve(t, newFakeBackend(), "POST", "/berth/containers/job/terminals", nil), 409, "not running")
	check(t, "malformed", serve(t, newFakeBackend(), "POST", "/berth/containers/web/terminals", strings.NewReader(`{"cmd":"x"}`)), 400, "open terminal")
	if rec := serve(t, newFakeBackend(), "GET", "/berth/containers/web/terminals", nil); rec.Code != 405 {
		t.Errorf("GET: %d, want 405", rec.Code)
	}
}

// TestWindowOpen: POST /berth/ui answers 201 with the window's URL.
func TestWindowOpen(t *testing.T) {
	rec := serve(t, newFakeBackend(), "POST", "/berth/ui", nil)
	var got types.Window
	if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &got) != nil || !strings.Contains(got.URL, "/#token=") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if rec := serve(t, newFakeBackend(), "GET", "/berth/ui", nil); rec.Code != 405 {
		t.Errorf("GET: %d, want 405", rec.Code)
	}
}
