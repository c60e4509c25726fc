// Package testenv holds the real parts Berth's end-to-end tests share: a
// real registry (Debian's docker-registry) on a loopback port, test images
// built from Debian's busybox-static, and the rule for missing tools (fail
// in CI, skip with the reason elsewhere).
package testenv

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Paths of the Debian tools the tests drive.
const (
	RegistryBin = "/usr/bin/docker-registry"
	BusyboxBin  = "/bin/busybox"
)

// RequireTool returns path when it exists; otherwise it fails the test
// under CI (CI=true: .ci/run must have installed it) and skips it
// elsewhere, naming the Debian package.
func RequireTool(t testing.TB, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing (apt-get install %s): %v", path, pkg, err)
		}
		t.Skipf("skipping: %s missing (apt-get install %s)", path, pkg)
	}
	return path
}

// RequireCommand is RequireTool for a command found on PATH.
func RequireCommand(t testing.TB, cmd, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(cmd)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not on PATH (install %s)", cmd, pkg)
		}
		t.Skipf("skipping: %s not on PATH (install %s)", cmd, pkg)
	}
	return p
}

// Registry is a running docker-registry.
type Registry struct {
	// Host is "127.0.0.1:PORT".
	Host string
}

// StartRegistry runs docker-registry on a free loopback port with a
// temporary storage directory until the test ends.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	RequireTool(t, RegistryBin, "docker-registry")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n  secret: berth-test\n",
		filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(RegistryBin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return &Registry{Host: addr}
		}
		select {
		case <-exited:
			t.Fatalf("docker-registry exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s: %s", addr, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BusyboxImage builds a linux/<host arch> image whose one layer holds
// Debian's static busybox at /bin/busybox with applet links (sh, ls, cat,
// echo, ps, sleep, ...), /etc/passwd and /etc/group, and whose config runs
// sh. extra files (path → content) are added to the layer.
func BusyboxImage(t testing.TB, extra map[string]string) v1.Image {
	t.Helper()
	RequireTool(t, BusyboxBin, "busybox-static")
	bb, err := os.ReadFile(BusyboxBin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Unix(1700000000, 0)
	add := func(h *tar.Header, body []byte) {
		h.ModTime = now
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "etc/", "tmp/", "root/", "proc/", "sys/", "dev/", "run/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755}, bb)
	for _, a := range []string{"sh", "ls", "cat", "echo", "ps", "sleep", "id", "env", "pwd", "stty", "true", "false", "hostname", "mount", "uname", "wc", "head", "tail", "kill", "touch", "rm", "mkdir", "grep", "sed", "seq", "top", "printf", "test"} {
		add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644}, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nberth:x:1000:1000:berth:/tmp:/bin/sh\n"))
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/group", Mode: 0o644}, []byte("root:x:0:\nnogroup:x:65534:\nberth:x:1000:\n"))
	for p, c := range extra {
		add(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o644}, []byte(c))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: now}
	cf.Config.Cmd = []string{"sh"}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Labels = map[string]string{"dev.berthvm.test": "busybox"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Push writes img to the registry as repo:tag and returns the reference
// ("127.0.0.1:PORT/repo:tag").
func (r *Registry) Push(t testing.TB, repo, tag string, img v1.Image) string {
	t.Helper()
	ref := fmt.Sprintf("%s/%s:%s", r.Host, repo, tag)
	nr, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(nr, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}
