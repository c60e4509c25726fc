package launcher

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDigestsHashOncePerFileIdentity: the same file is read once however
// often it is asked for; rewriting it in place or replacing it gives it a
// new identity, and a fresh hash.
func TestDigestsHashOncePerFileIdentity(t *testing.T) {
	d := newDigests()
	p := filepath.Join(t.TempDir(), "guestinit")
	if err := os.WriteFile(p, []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	check := func(want string, hashes int) {
		t.Helper()
		got, err := d.sum(p)
		if err != nil {
			t.Fatal(err)
		}
		if got != sha256.Sum256([]byte(want)) {
			t.Errorf("sum = %x, want the digest of %q", got, want)
		}
		if d.hashes != hashes {
			t.Errorf("%d files hashed, want %d", d.hashes, hashes)
		}
	}
	check("one", 1)
	check("one", 1)
	check("one", 1)

	// Rewritten in place, same size: the modification time differs.
	later := time.Now().Add(time.Hour)
	if err := os.WriteFile(p, []byte("two"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, later, later)
	check("two", 2)

	// Replaced by rename with the same size and time: the inode differs.
	q := p + ".new"
	if err := os.WriteFile(q, []byte("six"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(q, later, later)
	if err := os.Rename(q, p); err != nil {
		t.Fatal(err)
	}
	check("six", 3)
	check("six", 3)

	if _, err := d.sum(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("sum of a missing file succeeded")
	}
}
