package main

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthvm/berth/internal/testenv"
)

// testCopy is docker cp and berth cp on the running container ctr (run by
// TestDockerCLIContainers, sharing its VM): files and folders both ways
// with the real docker CLI and with berth, and hostile archives refused
// without a byte written outside the target.
func testCopy(t *testing.T, home, ctr string) {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "hello.txt"), []byte("hello from the host\n"), 0o640)
	os.MkdirAll(filepath.Join(src, "tree", "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "tree", "sub", "deep"), []byte("deep\n"), 0o644)
	os.Symlink("sub/deep", filepath.Join(src, "tree", "link"))

	// Host to container: a file into a folder, a folder to a new name.
	mustOK(t, "docker cp file in", docker(t, home, "cp", filepath.Join(src, "hello.txt"), ctr+":/tmp/"))
	mustOK(t, "docker cp dir in", docker(t, home, "cp", filepath.Join(src, "tree"), ctr+":/tmp/copied"))
	r := mustOK(t, "exec cat", docker(t, home, "exec", ctr, "sh", "-c", "cat /tmp/hello.txt /tmp/copied/sub/deep; busybox readlink /tmp/copied/link; busybox stat -c %a /tmp/hello.txt"))
	if r.out != "hello from the host\ndeep\nsub/deep\n640\n" {
		t.Fatalf("files in the container: %q", r.out)
	}
	// Container to host: the folder back, a file to a new name.
	out := t.TempDir()
	mustOK(t, "docker cp dir out", docker(t, home, "cp", ctr+":/tmp/copied", filepath.Join(out, "back")))
	if b, err := os.ReadFile(filepath.Join(out, "back", "sub", "deep")); err != nil || string(b) != "deep\n" {
		t.Fatalf("docker cp out: %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(out, "back", "link")); err != nil || l != "sub/deep" {
		t.Fatalf("docker cp out: link -> %q, %v", l, err)
	}
	// "dir/." copies the folder's contents.
	mustOK(t, "docker cp dir/. out", docker(t, home, "cp", ctr+":/tmp/copied/.", filepath.Join(out, "contents")))
	if b, err := os.ReadFile(filepath.Join(out, "contents", "sub", "deep")); err != nil || string(b) != "deep\n" {
		t.Fatalf("docker cp dir/. out: %q, %v", b, err)
	}
	r = docker(t, home, "cp", ctr+":/nope", out)
	if r.code == 0 || !strings.Contains(r.err, "Could not find the file /nope in container "+ctr) {
		t.Fatalf("docker cp of a missing path: %+v", r)
	}
	// berth cp, both ways.
	mustOK(t, "berth cp out", berth(t, home, "cp", ctr+":/tmp/hello.txt", filepath.Join(out, "renamed.txt")))
	if b, err := os.ReadFile(filepath.Join(out, "renamed.txt")); err != nil || string(b) != "hello from the host\n" {
		t.Fatalf("berth cp out: %q, %v", b, err)
	}
	mustOK(t, "berth cp dir/. out", berth(t, home, "cp", ctr+":/tmp/copied/.", filepath.Join(out, "contents2")))
	if b, err := os.ReadFile(filepath.Join(out, "contents2", "sub", "deep")); err != nil || string(b) != "deep\n" {
		t.Fatalf("berth cp dir/. out: %q, %v", b, err)
	}
	mustOK(t, "berth cp in", berth(t, home, "cp", filepath.Join(out, "renamed.txt"), ctr+":/tmp/again.txt"))
	r = mustOK(t, "exec cat again", docker(t, home, "exec", ctr, "cat", "/tmp/again.txt"))
	if r.out != "hello from the host\n" {
		t.Fatalf("berth cp in: %q", r.out)
	}

	// Hostile archives through the real docker CLI (`docker cp -` sends
	// stdin's tar as it is), into /tmp/target: each is refused and nothing
	// appears outside it.
	mustOK(t, "mkdir target", docker(t, home, "exec", ctr, "mkdir", "/tmp/target"))
	for name, entries := range map[string][]tar.Header{
		"dotdot":   {{Name: "../escaped", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
		"absolute": {{Name: "/tmp/escaped", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
		"symlink": {{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			{Name: "esc/escaped", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
		"relative symlink": {{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../etc"},
			{Name: "up/escaped", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
		"hardlink": {{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			tw.WriteHeader(&h)
			if h.Size > 0 {
				tw.Write([]byte("x"))
			}
		}
		tw.Close()
		r := dockerStdin(t, home, buf.Bytes(), "cp", "-", ctr+":/tmp/target")
		if r.code == 0 || !strings.Contains(r.err, "refused") {
			t.Errorf("%s archive: %+v; want it refused", name, r)
		}
	}
	r = docker(t, home, "exec", ctr, "sh", "-c", "ls /tmp/escaped /etc/escaped 2>&1; grep -c root /etc/passwd")
	if strings.Contains(r.out, "escaped\n") || !strings.HasSuffix(r.out, "1\n") {
		t.Fatalf("after the hostile archives: %q", r.out)
	}
}

// dockerStdin is docker with stdin (none when nil).
func dockerStdin(t testing.TB, home string, stdin []byte, args ...string) result {
	t.Helper()
	bin := testenv.RequireCommand(t, "docker", "the docker CLI (part of this machine's image)")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+filepath.Join(home, "berth.sock"), "DOCKER_CONFIG="+filepath.Join(home, "docker-config"))
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{o.String(), e.String(), code}
}
