package share

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
)

func TestStore(t *testing.T) {
	dir := t.TempDir()
	users := map[string][]string{}
	st, err := NewStore(dir, WithUsers(func() map[string][]string { return users }))
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.Create(CreateOptions{Name: "data", Labels: map[string]string{"com.docker.compose.project": "p"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Mountpoint != filepath.Join(dir, "data", "_data") || v.CreatedAt.IsZero() {
		t.Errorf("created %+v", v)
	}
	if err := os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Creating it again returns it unchanged.
	again, err := st.Create(CreateOptions{Name: "data"})
	if err != nil || again.Labels["com.docker.compose.project"] != "p" {
		t.Errorf("create again: %+v, %v", again, err)
	}
	// A store reopened sees it; a half-made volume is cleared.
	if err := os.Mkdir(filepath.Join(dir, ".tmp-123"), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err = NewStore(dir, WithUsers(func() map[string][]string { return users }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-123")); !os.IsNotExist(err) {
		t.Errorf("half-made volume left: %v", err)
	}
	got, err := st.Get("data")
	if err != nil || got.Labels["com.docker.compose.project"] != "p" {
		t.Errorf("Get after reopen: %+v, %v", got, err)
	}
	for _, bad := range []string{"../x", "a", ".hidden", "x/y", "-x"} {
		if _, err := st.Create(CreateOptions{Name: bad}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("create %q: %v, want invalid argument", bad, err)
		}
		if _, err := st.Get(bad); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("get %q: %v, want not found", bad, err)
		}
	}
	if _, err := st.Create(CreateOptions{Name: "x1", Driver: "nfs"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("driver nfs: %v", err)
	}
	if _, err := st.Get("nope"); err == nil || err.Error() != "get nope: no such volume" {
		t.Errorf("get missing: %v, want Docker's text", err)
	}
	anon, err := st.Create(CreateOptions{Anonymous: true})
	if err != nil || len(anon.Name) != 64 || !anon.Anonymous {
		t.Fatalf("anonymous: %+v, %v", anon, err)
	}

	// In use: refused with Docker's text, even with force.
	users["data"] = []string{"c1", "c2"}
	for _, force := range []bool{false, true} {
		err = st.Remove("data", force)
		if !errors.Is(err, errdefs.ErrConflict) || err.Error() != "remove data: volume is in use - [c1, c2]" {
			t.Errorf("remove in use (force %v): %v", force, err)
		}
	}
	// Prune: only what match picks and no container uses.
	rep, err := st.Prune(func(v Volume) bool { return v.Anonymous })
	if err != nil || len(rep.Deleted) != 1 || rep.Deleted[0] != anon.Name {
		t.Errorf("prune anonymous: %+v, %v", rep, err)
	}
	rep, err = st.Prune(nil)
	if err != nil || len(rep.Deleted) != 0 {
		t.Errorf("prune with data in use: %+v, %v", rep, err)
	}
	delete(users, "data")
	rep, err = st.Prune(nil)
	if err != nil || len(rep.Deleted) != 1 || rep.SpaceReclaimed != 5 {
		t.Errorf("prune all: %+v, %v", rep, err)
	}
	if err := st.Remove("data", false); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("remove gone: %v", err)
	}
	if err := st.Remove("data", true); err != nil {
		t.Errorf("remove gone with force: %v", err)
	}
	if vs, err := st.List(); err != nil || len(vs) != 0 {
		t.Errorf("list at the end: %+v, %v", vs, err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}
