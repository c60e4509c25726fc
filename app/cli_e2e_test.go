package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/internal/testenv"
	mobyclient "github.com/moby/moby/client"
)

// berthBin is the berth binary built once for the end-to-end tests.
var berthBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-e2e")
	if err != nil {
		panic(err)
	}
	berthBin = filepath.Join(dir, "berth")
	out, err := exec.Command("go", "build", "-o", berthBin, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	// The engine finds guestinit next to its executable, as `make build`
	// lays it out.
	if _, err := testenv.BuildGuestinit(dir, "../guestinit"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func shortHome(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "h")
}

type result struct {
	out, err string
	code     int
}

func berth(t testing.TB, home string, args ...string) result {
	t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(os.Environ(), "BERTH_HOME="+home)
	var o, e bytes.Buffer
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

// daemons maps a home to the daemon process startDaemon started last.
var daemons sync.Map

// runningDaemon is the daemon process startDaemon started for home.
func runningDaemon(t *testing.T, home string) *exec.Cmd {
	t.Helper()
	d, ok := daemons.Load(home)
	if !ok {
		t.Fatalf("no daemon started for %s", home)
	}
	return d.(*exec.Cmd)
}

// startDaemon runs `berth daemon` as a real process (with extra
// environment) and waits until it answers; it is stopped with SIGTERM at
// cleanup.
func startDaemon(t *testing.T, home string, env ...string) *exec.Cmd {
	t.Helper()
	return startDaemonAs(t, home, nil, env...)
}

// startDaemonAs is startDaemon running the daemon with the credentials
// cred (nil: this process's).
func startDaemonAs(t *testing.T, home string, cred *syscall.Credential, env ...string) *exec.Cmd {
	t.Helper()
	return startDaemonWith(t, home, cred, nil, env...)
}

// startDaemonWith is startDaemonAs with flags for `berth daemon`. The
// daemon runs in user network mode unless flags name one: tests run as
// root, where the default (auto) would make bridges on the host's own
// network.
func startDaemonWith(t *testing.T, home string, cred *syscall.Credential, flags []string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := daemonCommand(home, flags, env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return runDaemon(t, home, cmd)
}

// daemonCommand is `berth daemon` on home with flags (user network mode
// unless they name one, and no spare VMs unless they name --spare-idle:
// a spare is restored in the background after each daemon's first
// restore, CPU and memory the suite's many short-lived daemons would
// spend for starts that mostly never come; TestFastStart asks for them)
// and extra environment.
func daemonCommand(home string, flags []string, env ...string) *exec.Cmd {
	if !slices.ContainsFunc(flags, func(f string) bool { return strings.HasPrefix(f, "--network-mode") }) {
		flags = append([]string{"--network-mode=user"}, flags...)
	}
	if !slices.ContainsFunc(flags, func(f string) bool { return strings.HasPrefix(f, "--spare-idle") }) {
		flags = append([]string{"--spare-idle=0"}, flags...)
	}
	cmd := exec.Command(berthBin, append([]string{"daemon"}, flags...)...)
	cmd.Env = append(append(os.Environ(), "BERTH_HOME="+home), env...)
	return cmd
}

// runDaemon starts cmd, a daemonCommand, and waits until it answers on
// home's socket; it is stopped with SIGTERM at cleanup.
func runDaemon(t *testing.T, home string, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	daemons.Store(home, cmd)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("daemon did not stop on SIGTERM; log:\n%s", stderr.String())
		}
	})
	c, err := client.New(filepath.Join(home, "berth.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := c.Ping(context.Background(), mobyclient.PingOptions{}); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("daemon exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon never answered:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd
}

func TestSystemStatusWithoutDaemon(t *testing.T) {
	home := shortHome(t)
	r := berth(t, home, "system", "status")
	if r.code != 1 || !strings.Contains(r.out, "not running") || !strings.Contains(r.err, "Berth is not running: start it with `berth daemon` or open Berth.app") {
		t.Fatalf("status without daemon: %+v", r)
	}
	r = berth(t, home, "version")
	if r.code != 0 || !strings.Contains(r.out, "Server: not running") {
		t.Fatalf("version without daemon: %+v", r)
	}
}

func TestDaemonStatusAndSecondDaemon(t *testing.T) {
	home := shortHome(t)
	d := startDaemon(t, home)
	r := berth(t, home, "system", "status")
	if r.code != 0 || !strings.Contains(r.out, "running (pid ") || !strings.Contains(r.out, "Home:") || !strings.Contains(r.out, "Backend:") || !strings.Contains(r.out, "Kernel:") {
		t.Fatalf("status: %+v", r)
	}
	// A second daemon on the same home exits with a clear error…
	r = berth(t, home, "daemon")
	if r.code == 0 || !strings.Contains(r.err, "another Berth daemon") {
		t.Fatalf("second daemon: %+v", r)
	}
	// …and the first keeps serving.
	r = berth(t, home, "system", "status")
	if r.code != 0 || !strings.Contains(r.out, "running (pid ") {
		t.Fatalf("first daemon after second's attempt: %+v", r)
	}
	fi, err := os.Stat(filepath.Join(home, "berth.sock"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v", fi, err)
	}
	_ = d
}

func TestDockerCLIVersion(t *testing.T) {
	docker := testenv.RequireCommand(t, "docker", "the docker CLI (part of this machine's image)")
	home := shortHome(t)
	startDaemon(t, home)
	cmd := exec.Command(docker, "version")
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+filepath.Join(home, "berth.sock"), "DOCKER_CONFIG="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker version: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "Server: Berth") || !strings.Contains(s, "API version:      1.47 (minimum version 1.44)") {
		t.Fatalf("docker version did not print Berth's server block:\n%s", s)
	}
}

// TestSystemKernel: `berth system kernel` shows the kernel the engine
// boots; `set` persists a valid choice and refuses bad ones with the
// reason.
func TestSystemKernel(t *testing.T) {
	home := shortHome(t)
	startDaemon(t, home)
	r := mustOK(t, "system kernel", berth(t, home, "system", "kernel"))
	if !strings.HasPrefix(r.out, "Kernel: ") {
		t.Fatalf("system kernel: %q", r.out)
	}
	r = berth(t, home, "system", "kernel", "set", "--path", "/nonexistent/vmlinuz")
	if r.code == 0 || !strings.Contains(r.err, "/nonexistent/vmlinuz") {
		t.Fatalf("set of a missing path: %+v", r)
	}
	r = berth(t, home, "system", "kernel", "set", "--url", "https://example.invalid/k.deb", "--sha256", "nothex")
	if r.code == 0 || !strings.Contains(r.err, "64 hex digits") {
		t.Fatalf("set with a bad sha256: %+v", r)
	}
	r = berth(t, home, "system", "kernel", "set", "--url", "https://example.invalid/k.deb", "--sha256", strings.Repeat("ab", 32))
	if r.code != 0 || !strings.Contains(r.out, "fetched on first use from https://example.invalid/k.deb") {
		t.Fatalf("set a URL: %+v", r)
	}
	b, err := os.ReadFile(filepath.Join(home, "kernel.json"))
	if err != nil || !strings.Contains(string(b), "example.invalid") {
		t.Fatalf("kernel.json: %v %s", err, b)
	}
}
