// Package testenv holds the real parts Berth's end-to-end tests share: a
// real registry (Debian's docker-registry) on a loopback port, test images
// built from Debian's busybox-static, and the rule for missing tools (fail
// in CI, skip with the reason elsewhere).
package testenv

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/demoimage"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
)

// Paths of the Debian tools the tests drive.
const (
	RegistryBin = "/usr/bin/docker-registry"
	BusyboxBin  = "/bin/busybox"
)

// InCI reports whether the tests run in CI (CI=true), where what a test
// needs is installed and granted, so that its absence is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable is the one rule for a test whose prerequisite is missing:
// it fails the test in CI (where .ci/run must provide it) and skips it
// elsewhere, saying why either way.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI must provide it)", why)
	}
	t.Skipf("skipping: %s", why)
}

// RequireTool returns path when it exists; otherwise it fails the test
// under CI (CI=true: .ci/run must have installed it) and skips it
// elsewhere, naming the Debian package.
func RequireTool(t testing.TB, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Unavailable(t, "%s missing (apt-get install %s): %v", path, pkg, err)
	}
	return path
}

// RequireCommand is RequireTool for a command found on PATH.
func RequireCommand(t testing.TB, cmd, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(cmd)
	if err != nil {
		Unavailable(t, "%s not on PATH (install %s)", cmd, pkg)
	}
	return p
}

// RequireRoot fails the test in CI and skips it elsewhere unless it runs
// as root; why says what needs root ("loop-mounting an image").
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "%s needs root", why)
	}
}

// Registry is a running docker-registry.
type Registry struct {
	// Host is "127.0.0.1:PORT".
	Host string
}

// StartRegistry runs docker-registry on a free loopback port with a
// temporary storage directory until the test ends (or the test binary
// dies, on Linux).
func StartRegistry(t testing.TB) *Registry { return startRegistry(t, "") }

// StartAuthRegistry is StartRegistry with HTTP basic auth: user and
// password are the only credentials it accepts (htpasswd, bcrypt).
func StartAuthRegistry(t testing.TB, user, password string) *Registry {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startRegistry(t, fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", p))
}

// TokenAuth is the token authentication of a registry (as Docker Hub
// works): clients get a bearer token from Realm, signed by a key whose
// certificate is in RootCertBundle.
type TokenAuth struct {
	Realm, Service, Issuer, RootCertBundle string
}

// StartTokenRegistry is StartRegistry with token authentication.
func StartTokenRegistry(t testing.TB, a TokenAuth) *Registry {
	t.Helper()
	return startRegistry(t, fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
		a.Realm, a.Service, a.Issuer, a.RootCertBundle))
}

// startRegistry starts docker-registry; auth is its configuration's
// "auth:" block, or "" for none.
func startRegistry(t testing.TB, auth string) *Registry {
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
	cfg += auth
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(RegistryBin, "serve", cfgPath)
	cmd.SysProcAttr = dieWithParent()
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
	img, err := demoimage.Busybox(BusyboxBin, runtime.GOARCH, extra)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Push writes img to the registry as repo:tag and returns the reference
// ("127.0.0.1:PORT/repo:tag"); auth, when given, are the registry's
// credentials (user, password).
func (r *Registry) Push(t testing.TB, repo, tag string, img v1.Image, auth ...string) string {
	t.Helper()
	ref := fmt.Sprintf("%s/%s:%s", r.Host, repo, tag)
	nr, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var opts []remote.Option
	if len(auth) == 2 {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: auth[0], Password: auth[1]}))
	}
	if err := remote.Write(nr, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// Fsck runs `e2fsck -fn` on the ext4 image img and fails the test unless
// it is clean.
func Fsck(t testing.TB, img string) {
	t.Helper()
	bin := RequireCommand(t, "e2fsck", "e2fsprogs")
	if out, err := exec.Command(bin, "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", img, err, out)
	}
}

// Debugfs runs debugfs commands (read-only) against the ext4 image img
// and returns their output.
func Debugfs(t testing.TB, img string, cmds ...string) string {
	t.Helper()
	bin := RequireCommand(t, "debugfs", "e2fsprogs")
	cmd := exec.Command(bin, "-f", "-", img)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs %s: %v\n%s", img, err, out)
	}
	return string(out)
}

// BrowserTools returns node and chromium for the tests that drive Debian's
// chromium with playwright-core from webDir (assets/web, whose test/
// holds the scripts). BERTH_CHROMIUM overrides /usr/bin/chromium. Whatever
// is missing — node, chromium, the built page or its node_modules (`make
// web` builds both; `make test` depends on it) — is Unavailable: a skip
// that says what to do outside CI, a failure in CI.
func BrowserTools(t testing.TB, webDir string) (node, chromium string) {
	t.Helper()
	node = RequireCommand(t, "node", "Node.js 20+: apt-get install nodejs")
	chromium = os.Getenv("BERTH_CHROMIUM")
	if chromium == "" {
		chromium = RequireTool(t, "/usr/bin/chromium", "chromium")
	}
	for _, p := range []string{
		filepath.Join(webDir, "dist", "index.html"),
		filepath.Join(webDir, "node_modules", "playwright-core", "package.json"),
	} {
		if _, err := os.Stat(p); err != nil {
			Unavailable(t, "the browser tests need the built page and its node_modules: run `make web` first (%v)", err)
		}
	}
	return node, chromium
}

// BuildGuestinit builds the guest's PID 1 (the package at pkg, a path
// relative to the test's directory such as "../guestinit") for linux and
// the host's architecture into dir, named as `make build` names it
// (guestinit-linux-ARCH), and returns its path. For TestMain, so it
// returns an error instead of failing a test.
func BuildGuestinit(dir, pkg string) (string, error) {
	out := filepath.Join(dir, "guestinit-linux-"+runtime.GOARCH)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build guestinit from %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// RunWithGuestinit is the body of a TestMain whose tests boot VMs: it
// builds guestinit from pkg (as BuildGuestinit) into a temporary
// directory, sets the environment variable env (the launcher's
// GuestinitEnv) to it, runs the tests and removes the directory. It
// returns m.Run's exit code, or 1 when guestinit does not build.
func RunWithGuestinit(m *testing.M, pkg, env string) int {
	dir, err := os.MkdirTemp("", "berth-guestinit-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	out, err := BuildGuestinit(dir, pkg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv(env, out)
	return m.Run()
}
