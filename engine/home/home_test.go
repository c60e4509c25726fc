package home

import (
	"os"
	"path/filepath"
	"testing"
)

func TestEnsureTightensAnOpenHome(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o755, 0o750, 0o700} {
		dir := filepath.Join(t.TempDir(), "home")
		if err := os.Mkdir(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		if err := (Home{Dir: dir}).Ensure(); err != nil {
			t.Fatalf("Ensure on a home of mode %04o: %v", mode, err)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o700 {
			t.Errorf("home of mode %04o is %04o after Ensure; want 0700", mode, got)
		}
	}
}

func TestEnsureCreatesAPrivateHome(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "home")
	if err := (Home{Dir: dir}).Ensure(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("new home: %v, %v; want a 0700 directory", fi, err)
	}
}

func TestEnsureRefusesAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "home")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (Home{Dir: f}).Ensure(); err == nil {
		t.Fatal("Ensure on a regular file succeeded")
	}
}
