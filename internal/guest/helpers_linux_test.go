package guest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/agent/transport/transporttest"
)

// testStageExe is a static guestinit, which the containers of these tests
// start their main process as (this test binary may be linked against
// libc, which the busybox rootfs lacks).
var testStageExe string

func TestMain(m *testing.M) {
	RunIfContainerInit()
	dir, err := os.MkdirTemp("", "guest-test")
	if err != nil {
		panic(err)
	}
	testStageExe = filepath.Join(dir, "guestinit")
	cmd := exec.Command("go", "build", "-o", testStageExe, "../../guestinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build static guestinit: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireRoot: the guest's tests make namespaces, mounts and pivot_root.
func requireRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "namespaces, mounts and pivot_root")
}

const busyboxPath = "/bin/busybox"

var applets = []string{"sh", "ps", "cat", "echo", "sleep", "id", "stty", "hostname", "grep",
	"ls", "kill", "tty", "wc", "sed", "true", "false", "env", "pwd", "mount", "head", "tr", "timeout", "seq", "mkdir"}

// newRootfs makes a throwaway container rootfs from busybox-static, with a
// test user "tester" (1000) in group "tester" (1000) and member of
// "extra" (2000).
func newRootfs(t *testing.T) string {
	t.Helper()
	testenv.RequireTool(t, busyboxPath, "busybox-static")
	dir := t.TempDir()
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "home/tester", "mnt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000:Tester:/home/tester:/bin/sh\n",
		"etc/group":  "root:x:0:\ntester:x:1000:\nextra:x:2000:tester\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	return dir
}

type env struct {
	srv    *Server
	client *agent.Client
	rootfs string
	// tr is the test transport without half-close (as vz's vsock), over
	// unix sockets: no stdio test may depend on a half-close.
	tr transporttest.NoHalfClose
	// staging is the server's ShareStaging.
	staging string

	mu        sync.Mutex
	shutdowns []bool
}

// newEnv starts an agent server on a fresh busybox rootfs, reached over
// the unix-socket transport with half-close taken away
// (transporttest.NoHalfClose), and a client dialed to it; opts change
// the server's Config.
func newEnv(t *testing.T, opts ...func(*Config)) *env {
	t.Helper()
	requireRoot(t)
	rootfs := newRootfs(t)
	sockDir, err := os.MkdirTemp("", "ba")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	e := &env{rootfs: rootfs, staging: t.TempDir(), tr: transporttest.NewNoHalfClose(transport.NewUnix(sockDir))}
	cfg := Config{
		Rootfs:       rootfs,
		ShareStaging: e.staging,
		StageExe:     testStageExe,
		Listener:     e.tr,
		Logger:       log.New(testWriter{t}, "agent: ", log.Lmicroseconds),
		Version:      "test",
		Shutdown: func(reboot bool) {
			e.mu.Lock()
			e.shutdowns = append(e.shutdowns, reboot)
			e.mu.Unlock()
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	c, err := agent.Dial(dctx, e.tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e.client = c
	return e
}

// testWriter sends the server's log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// run runs args as a new container's main process and returns its output.
func (e *env) run(t *testing.T, r *agentpb.CreateProcessRequest, stdin string) (stdout, stderr string, st agent.ExitStatus) {
	t.Helper()
	var out, errb bytes.Buffer
	stdio := agent.Stdio{Stdout: &out, Stderr: &errb}
	if stdin != "" {
		stdio.Stdin = strings.NewReader(stdin)
	}
	st, err := e.client.Run(ctxT(t), r, stdio)
	if err != nil {
		t.Fatalf("run %v: %v", r.Args, err)
	}
	return out.String(), errb.String(), st
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ io.Writer = (*testenv.SyncBuffer)(nil)
