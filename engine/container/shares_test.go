package container

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
)

func TestDefaultShareTarget(t *testing.T) {
	used := map[string]bool{"/mnt/src": true, "/mnt/src-2": true}
	if got := defaultShareTarget("/Users/me/src", used); got != "/mnt/src-3" {
		t.Errorf("de-duplicated target = %s, want /mnt/src-3", got)
	}
	if got := defaultShareTarget("/Users/me/docs", used); got != "/mnt/docs" {
		t.Errorf("target = %s, want /mnt/docs", got)
	}
}

func TestCheckShareSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if got, err := checkShareSource(link); err != nil || got != real {
		t.Errorf("a link to a folder resolves to %q, %v; want %s", got, err, real)
	}
	for _, c := range []struct{ in, msg string }{
		{file, "it is a file, not a folder"},
		{filepath.Join(dir, "missing"), "no such folder"},
		{"relative", "absolute path"},
	} {
		_, err := checkShareSource(c.in)
		if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("checkShareSource(%s) = %v, want an invalid argument saying %q", c.in, err, c.msg)
		}
	}
	for _, bad := range []string{"rel/x", "/"} {
		if _, err := checkShareTarget(bad); err == nil {
			t.Errorf("target %q accepted", bad)
		}
	}
	if got, _ := checkShareTarget("/a/../b/"); got != "/b" {
		t.Errorf("target cleaned to %q", got)
	}
}
