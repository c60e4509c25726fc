package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/builder"
	"github.com/berthvm/berth/internal/testenv"
)

// TestBuild is image building end to end on one daemon and one builder
// VM (BuildKit from `make builder-bins`): the real docker CLI without
// buildx (the legacy POST /build) builds a multi-stage Dockerfile whose
// first stage RUNs a busybox COPYed into a scratch image (the builder
// has no network) and whose second copies the RUN's file; `berth build`
// of the same context and arguments finds every step CACHED and the
// same image, and sent its context without the directory .dockerignore
// excludes; `berth compose build` (docker compose without buildx: the
// same legacy API) finds the layers CACHED too; `berth run --rm` of the
// result prints what the RUN step wrote. A Dockerfile syntax error, a failing RUN and a base image the
// builder cannot fetch fail both clients with BuildKit's message and a
// non-zero exit. Interrupting `berth build` cancels the build (buildctl
// ends) and leaves the builder running.
func TestBuild(t *testing.T) {
	bins, err := filepath.Abs(filepath.Join("..", "builder", "bin", runtime.GOARCH))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range builder.Programs {
		if _, err := os.Stat(filepath.Join(bins, p)); err != nil {
			testenv.Unavailable(t, "%s: run make builder-bins (BuildKit and runc for linux/%s)", err, runtime.GOARCH)
		}
	}
	busybox := testenv.RequireTool(t, "/bin/busybox", "busybox-static")
	testenv.RequireCommand(t, "docker", "the docker CLI (part of this machine's image)")
	if v, ok := os.LookupEnv("DOCKER_BUILDKIT"); ok { // the docker CLI's default: the legacy builder without buildx
		t.Setenv("DOCKER_BUILDKIT", v)
		os.Unsetenv("DOCKER_BUILDKIT")
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	const big = 8 << 20
	dir := writeTree(t, map[string]string{
		"busybox": string(bb),
		"Dockerfile": `FROM scratch AS base
COPY busybox /bin/busybox
ARG MSG=unset
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir /out && /bin/busybox echo built by RUN: $MSG > /out/msg"]

FROM scratch
COPY --from=base /bin/busybox /bin/busybox
COPY --from=base /out/msg /msg
CMD ["/bin/busybox", "cat", "/msg"]
`,
		".dockerignore": "# not sent\nbig\n",
		"big/blob":      strings.Repeat("x", big),
	})
	// The failing builds' contexts: busybox only where a RUN needs it.
	bad := writeTree(t, map[string]string{
		"busybox":         string(bb),
		"fail.Dockerfile": "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo failing on purpose; exit 3\"]\n",
		"slow.Dockerfile": "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo sleeping; /bin/busybox sleep 600\"]\n",
	})
	tiny := writeTree(t, map[string]string{
		"syntax.Dockerfile": "FROM scratch\nCOPY Dockerfile /\nRUNN echo hi\n",
		"base.Dockerfile":   "FROM nosuchbase.example/none:1\nRUN echo hi\n",
	})

	home := shortHome(t)
	startDaemon(t, home, builder.BinDirEnv+"="+bins)
	start := time.Now()
	mustOK(t, "berth builder start", berth(t, home, "builder", "start"))
	t.Logf("builder started in %v", time.Since(start).Round(100*time.Millisecond))

	start = time.Now()
	r := mustOK(t, "docker build", docker(t, home, "build", "-t", "built:docker", "--build-arg", "MSG=hello", dir))
	first := time.Since(start)
	if !strings.Contains(r.out, "Successfully tagged built:docker") || !strings.Contains(r.out, "RUN [\"/bin/busybox\"") {
		t.Fatalf("docker build: no RUN step or tag in its output:\n%s\n%s", r.out, r.err)
	}
	dockerID := builtID(t, r.out)

	start = time.Now()
	r = mustOK(t, "berth build", berth(t, home, "build", "-t", "built:berth", "--build-arg", "MSG=hello", "--progress", "plain", dir))
	second := time.Since(start)
	t.Logf("docker build: %v; identical berth build: %v (%.0f %%)", first.Round(100*time.Millisecond), second.Round(100*time.Millisecond),
		100*second.Seconds()/first.Seconds())
	if n := strings.Count(r.err, " CACHED\n"); n < 4 {
		t.Errorf("berth build of the same context: %d steps CACHED, want the 4 (COPY, RUN, COPY, COPY):\n%s", n, r.err)
	}
	if id := builtID(t, r.err); id != dockerID {
		t.Errorf("berth build made image %s, docker build %s; want the same", id, dockerID)
	}
	m := regexp.MustCompile(`Sent (\d+) bytes .* of build context: (\d+) files, (\d+) excluded by .dockerignore`).FindStringSubmatch(r.err)
	if m == nil {
		t.Fatalf("berth build --progress plain does not report the context it sent:\n%s", r.err)
	}
	if sent, _ := strconv.Atoi(m[1]); sent < len(bb) || sent >= big || m[2] != "3" || m[3] != "1" {
		t.Errorf("berth build sent %s bytes, %s files, %s excluded; want busybox's %d bytes and more, without big/ (%d bytes): 3 files, 1 excluded",
			m[1], m[2], m[3], len(bb), big)
	}
	// docker compose v5.6.0 without buildx falls back to the classic
	// builder: the same POST /build. Its image differs by compose's
	// label; its layers are the same, CACHED.
	run := "built:berth"
	if plugin := filepath.Join(os.Getenv("HOME"), ".docker", "cli-plugins", "docker-compose"); fileExists(plugin) {
		composeFile := filepath.Join(t.TempDir(), "compose.yaml")
		if err := os.WriteFile(composeFile, []byte(fmt.Sprintf("services:\n  app:\n    build:\n      context: %s\n      args:\n        MSG: hello\n    image: built:compose\n", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		r = mustOK(t, "berth compose build", berth(t, home, "compose", "-f", composeFile, "-p", "buildtest", "build"))
		t.Logf("compose build: %v", time.Since(start).Round(100*time.Millisecond))
		if out := r.out + r.err; !strings.Contains(out, "Successfully tagged built:compose") || strings.Count(out, " CACHED\n") < 4 {
			t.Errorf("berth compose build: no tag or not the 4 steps CACHED:\n%s", out)
		}
		run = "built:compose"
	} else {
		t.Logf("not checking docker compose build: no plugin at %s (make compose)", plugin)
	}
	// The run (a container VM) alongside the failing builds (the
	// builder's VM).
	start = time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		r := berth(t, home, "run", "--rm", run)
		if r.code != 0 || r.out != "built by RUN: hello\n" {
			t.Errorf("berth run --rm %s: exit %d, printed %q, want the RUN step's line\n%s", run, r.code, r.out, r.err)
		}
		t.Logf("berth run --rm %s: %v", run, time.Since(start).Round(100*time.Millisecond))
	})

	// Failures: both clients at once for each, each a clear error.
	for _, c := range []struct{ dir, file, want string }{
		{tiny, "syntax.Dockerfile", "dockerfile parse error on line 3: unknown instruction: RUNN"},
		{bad, "fail.Dockerfile", "did not complete successfully: exit code: 3"},
		{tiny, "base.Dockerfile", "base image nosuchbase.example/none:1 (FROM on line 1, platform linux/" + runtime.GOARCH + ") is not in Berth's image store and could not be pulled"},
	} {
		file, want := c.file, c.want
		for _, client := range []string{"docker", "berth"} {
			wg.Go(func() {
				args := []string{"build", "-f", filepath.Join(c.dir, file), c.dir}
				var r result
				if client == "docker" {
					r = docker(t, home, args...)
				} else {
					r = berth(t, home, args...)
				}
				// docker prints the error on stderr; berth says "berth: build: …".
				if r.code == 0 || !strings.Contains(r.err, want) {
					t.Errorf("%s build -f %s: exit %d; want non-zero and %q on stderr\nstdout:\n%s\nstderr:\n%s", client, file, r.code, want, r.out, r.err)
				}
			})
		}
	}
	wg.Wait()
	t.Logf("the run and the six failing builds: %v", time.Since(start).Round(100*time.Millisecond))

	// Ctrl-C: the build stops (buildctl killed: the builder has no client
	// left), the builder runs on.
	start = time.Now()
	cmd := exec.Command(berthBin, "build", "--progress", "plain", "-f", filepath.Join(bad, "slow.Dockerfile"), bad)
	cmd.Env = append(os.Environ(), "BERTH_HOME="+home)
	var progress testenv.SyncBuffer
	cmd.Stderr = &progress
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	running := regexp.MustCompile(`(?m)^#\d+ [0-9.]+ sleeping$`)
	waitUntil(t, "the slow RUN step to start", 2*time.Minute, func() bool { return running.MatchString(progress.String()) })
	t.Logf("the slow build's RUN step started after %v", time.Since(start).Round(100*time.Millisecond))
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err == nil {
		t.Errorf("berth build interrupted: exit 0\n%s", progress.String())
	}
	start = time.Now()
	waitUntil(t, "the cancelled build to leave the builder", 30*time.Second, func() bool {
		st := builderStatus(t, home)
		if !st.Running {
			t.Fatalf("the builder stopped with the cancelled build: %+v", st)
		}
		return st.Connections == 0
	})
	t.Logf("the cancelled build left the builder %v after the interrupt", time.Since(start).Round(100*time.Millisecond))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// builtID is the short image ID in a build's "Successfully built ID".
func builtID(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`Successfully built ([0-9a-f]{12})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no \"Successfully built\" in the build's output:\n%s", out)
	}
	return m[1]
}

// builderStatus is `berth builder status --json`.
func builderStatus(t *testing.T, home string) types.BuilderStatus {
	t.Helper()
	r := mustOK(t, "berth builder status", berth(t, home, "builder", "status", "--json"))
	var st types.BuilderStatus
	if err := json.Unmarshal([]byte(r.out), &st); err != nil {
		t.Fatalf("berth builder status --json: %v\n%s", err, r.out)
	}
	return st
}

// writeTree writes files (slash path → content; executable) under a new
// temporary directory and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// waitUntil polls cond every 200 ms for up to limit.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
