// Package usertest holds the one table of /etc/passwd and /etc/group
// cases that every reader of those files is tested against: package
// user's own test, the host's (files read from an ext4 image) and the
// guest's (files read from the container's rootfs). Same inputs, same
// answer, on both sides of the VM.
package usertest

import (
	_ "embed"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/user"
)

//go:embed cases.json
var casesJSON []byte

// Files are the contents of /etc/passwd and /etc/group; nil: missing.
type Files struct {
	Passwd *string `json:"passwd"`
	Group  *string `json:"group"`
}

// Case is one USER value resolved against a fixture.
type Case struct {
	Fixture string   `json:"fixture"`
	Spec    string   `json:"spec"`
	Extra   []uint32 `json:"extra"`
	Want    struct {
		UID    uint32   `json:"uid"`
		GID    uint32   `json:"gid"`
		Groups []uint32 `json:"groups"`
		Home   string   `json:"home"`
		// Error is the class ("invalid"); Text the exact message.
		Error string `json:"error"`
		Text  string `json:"text"`
	} `json:"want"`
}

// Table returns the fixtures by name and the cases.
func Table(t testing.TB) (map[string]Files, []Case) {
	t.Helper()
	var tab struct {
		Fixtures map[string]Files `json:"fixtures"`
		Cases    []Case           `json:"cases"`
	}
	if err := json.Unmarshal(casesJSON, &tab); err != nil {
		t.Fatalf("usertest table: %v", err)
	}
	for _, c := range tab.Cases {
		if _, ok := tab.Fixtures[c.Fixture]; !ok {
			t.Fatalf("usertest table: case %q names no fixture %q", c.Spec, c.Fixture)
		}
	}
	return tab.Fixtures, tab.Cases
}

// Check reports where got and err differ from what c wants. Where a
// reader adds context to an error, it must still end with the text.
func Check(t testing.TB, c Case, got user.Exec, err error) {
	t.Helper()
	name := c.Fixture + "/" + c.Spec
	if c.Want.Error != "" {
		if err == nil {
			t.Errorf("%s: resolved to %+v, want error %q", name, got, c.Want.Text)
			return
		}
		if c.Want.Error == "invalid" && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: error %v is not invalid argument", name, err)
		}
		if msg := err.Error(); len(msg) < len(c.Want.Text) || msg[len(msg)-len(c.Want.Text):] != c.Want.Text {
			t.Errorf("%s: error %q, want it to end with %q", name, msg, c.Want.Text)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if got.UID != c.Want.UID || got.GID != c.Want.GID || got.Home != c.Want.Home || !slices.Equal(got.Groups, c.Want.Groups) {
		t.Errorf("%s: %d:%d %v home %q, want %d:%d %v home %q", name,
			got.UID, got.GID, got.Groups, got.Home, c.Want.UID, c.Want.GID, c.Want.Groups, c.Want.Home)
	}
}
