package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/api/types"
)

func TestShareEndpoints(t *testing.T) {
	b := newFakeBackend()
	base := "/berth/containers/web/shares"
	cases := []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"GET", base, "", 200, ""},
		{"POST", base, `{"source":"/Users/me/src"}`, 201, ""},
		{"POST", base, `{"source":"/Users/me/src"}`, 409, "already shared"},
		{"POST", base, `{}`, 400, "no source folder"},
		{"POST", "/berth/containers/nope/shares", `{"source":"/x"}`, 404, "nope"},
		{"DELETE", base, "", 400, "no target given"},
		{"DELETE", base + "?target=/mnt/y", "", 404, "no share at /mnt/y"},
		{"DELETE", base + "?target=/mnt/x", "", 204, ""},
	}
	for _, c := range cases {
		rec := serve(t, b, c.method, c.path, strings.NewReader(c.body))
		check(t, c.method+" "+c.path+" "+c.body, rec, c.code, c.msg)
	}
	serve(t, b, "POST", base, strings.NewReader(`{"source":"/a","target":"/data","readOnly":true}`))
	rec := serve(t, b, "GET", base, nil)
	var got []types.Share
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != (types.Share{Source: "/a", Target: "/data", ReadOnly: true}) {
		t.Errorf("GET shares = %+v", got)
	}
}

// TestPluginMenuEndpoint: GET /berth/plugins/menu is the backend's
// plugin menu entries as JSON; nothing else is served there.
func TestPluginMenuEndpoint(t *testing.T) {
	b := newFakeBackend()
	rec := serve(t, b, "GET", "/berth/plugins/menu", nil)
	check(t, "GET /berth/plugins/menu", rec, 200, "")
	if got := strings.TrimSpace(rec.Body.String()); got != `[{"plugin":"top","title":"Container Activity (top)","args":["--once"]}]` {
		t.Errorf("GET /berth/plugins/menu = %s", got)
	}
	check(t, "POST /berth/plugins/menu", serve(t, b, "POST", "/berth/plugins/menu", nil), 405, "")
}
