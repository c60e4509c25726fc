package cli

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// contextEntries is the build context newBuildContext tars for dir and
// file: its entries' names (directories with a trailing slash) and the
// Dockerfile's name in it.
func contextEntries(t *testing.T, dir, file string, stdin string) ([]string, map[string]string, *buildContext) {
	t.Helper()
	bc, err := newBuildContext(dir, file, strings.NewReader(stdin))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := bc.write(&b); err != nil {
		t.Fatal(err)
	}
	var names []string
	contents := map[string]string{}
	tr := tar.NewReader(&b)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s is owned by %d:%d, want root as docker sends it", h.Name, h.Uid, h.Gid)
		}
		names = append(names, h.Name)
		c, _ := io.ReadAll(tr)
		contents[h.Name] = string(c)
	}
	slices.Sort(names)
	return names, contents, bc
}

// TestBuildContextDockerignore: berth build's context leaves out what
// .dockerignore excludes (whole directories unread, a "!" exception
// brought back), always sends the Dockerfile and .dockerignore even when
// excluded, and adds a Dockerfile from outside the context or stdin
// under a name of its own, as the docker CLI does.
func TestBuildContextDockerignore(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"Dockerfile":       "FROM scratch\n",
		".dockerignore":    "# comment\nnode_modules\n*.log\n!keep.log\nDockerfile\n.dockerignore\nsub/secret\n",
		"app.go":           "package main\n",
		"a.log":            "x",
		"keep.log":         "kept",
		"node_modules/m":   "big",
		"node_modules/n":   "big",
		"sub/secret":       "s",
		"sub/public":       "p",
		"other/Dockerfile": "FROM scratch\nCOPY app.go /\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names, _, bc := contextEntries(t, dir, "", "")
	want := []string{".dockerignore", "Dockerfile", "app.go", "keep.log", "other/", "other/Dockerfile", "sub/", "sub/public"}
	if !slices.Equal(names, want) {
		t.Errorf("context entries %q, want %q", names, want)
	}
	if bc.dockerfile != "Dockerfile" || bc.files != 6 || bc.excluded != 4 {
		t.Errorf("dockerfile %q, %d files sent, %d excluded; want Dockerfile, 6, 4 (a.log, node_modules/m and n, sub/secret)", bc.dockerfile, bc.files, bc.excluded)
	}

	// -f inside the context: its path there.
	if _, _, bc := contextEntries(t, dir, filepath.Join(dir, "other", "Dockerfile"), ""); bc.dockerfile != "other/Dockerfile" {
		t.Errorf("-f CONTEXT/other/Dockerfile: the Dockerfile is %q in the context, want other/Dockerfile", bc.dockerfile)
	}
	// -f outside the context, and -f -: added under a name of their own.
	outside := filepath.Join(t.TempDir(), "Dockerfile.dev")
	os.WriteFile(outside, []byte("FROM scratch\nLABEL dev=1\n"), 0o644)
	for file, content := range map[string]string{outside: "FROM scratch\nLABEL dev=1\n", "-": "FROM scratch\nLABEL stdin=1\n"} {
		_, contents, bc := contextEntries(t, dir, file, "FROM scratch\nLABEL stdin=1\n")
		if !strings.HasPrefix(bc.dockerfile, ".dockerfile.") || contents[bc.dockerfile] != content {
			t.Errorf("-f %s: the Dockerfile is %q in the context, holding %q; want .dockerfile.RANDOM with %q", file, bc.dockerfile, contents[bc.dockerfile], content)
		}
	}
	// A missing Dockerfile or context is an error naming it.
	if _, err := newBuildContext(filepath.Join(dir, "nope"), "", nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("a missing context: %v", err)
	}
	if _, err := newBuildContext(filepath.Join(dir, "sub"), "", nil); err == nil || !strings.Contains(err.Error(), "Dockerfile") {
		t.Errorf("a context without a Dockerfile: %v", err)
	}
}
