package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"
)

// TestComposePlugin: the Docker Compose that `make compose` (and .ci/run)
// builds is installed as the docker CLI plugin with its pinned version
// stamped, and `berth compose` runs it; without it, berth says how to get
// it.
func TestComposePlugin(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	plugin := filepath.Join(home, ".docker", "cli-plugins", "docker-compose")
	testenv.RequireTool(t, plugin, "docker compose (make compose)")
	out, err := exec.Command(plugin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "Docker Compose version v5.6.0" {
		t.Fatalf("docker-compose version: %q, %v; want the pinned v5.6.0, stamped", out, err)
	}
	r := mustOK(t, "berth compose version", berth(t, shortHome(t), "compose", "version", "--short"))
	if strings.TrimSpace(r.out) != "5.6.0" {
		t.Fatalf("berth compose version --short: %q", r.out)
	}

	for _, d := range []string{"/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins", "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins"} {
		if _, err := os.Stat(filepath.Join(d, "docker-compose")); err == nil {
			t.Logf("not checking berth compose without the plugin: this machine has one in %s", d)
			return
		}
	}
	cmd := exec.Command(berthBin, "compose", "version")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir(), "PATH="+t.TempDir(), "BERTH_HOME="+shortHome(t))
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Docker Compose is not installed") || !strings.Contains(string(out), "make compose") {
		t.Fatalf("berth compose without the plugin: %q, %v", out, err)
	}
}

// composeApp is the two-service application TestComposeApp runs: web, a
// busybox httpd whose CGI script finds db by its service name (Berth's
// DNS on the project network) and fetches from it; db, a busybox httpd
// whose CGI script counts visits in a file on the named volume dbdata,
// healthy once that file exists. web waits for db to be healthy.
const composeApp = `
services:
  web:
    image: %[1]s
    command: ["sh", "-c", "chmod +x /www/cgi-bin/hit && exec busybox httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:%[2]d:80"]
    stop_grace_period: 1s
    depends_on:
      db:
        condition: service_healthy
  db:
    image: %[1]s
    command: ["sh", "/srv/start.sh"]
    volumes: ["dbdata:/data"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "sh", "-c", "test -s /data/count"]
      interval: 1s
      retries: 60
volumes:
  dbdata: {}
`

// composeFiles are the scripts in the test's image (added as 0644; the
// services' commands make the CGI scripts executable).
var composeFiles = map[string]string{
	// db's start: the count survives on the volume; a fresh volume starts at 0.
	"srv/start.sh": "test -s /data/count || echo 0 > /data/count\n" +
		"echo \"db starting at count $(cat /data/count)\"\n" +
		"chmod +x /srv/cgi-bin/incr\n" +
		"exec busybox httpd -f -p 80 -h /srv\n",
	"srv/cgi-bin/incr": "#!/bin/sh\n" +
		"n=$(($(cat /data/count) + 1)); echo $n > /data/count\n" +
		"printf 'Content-Type: text/plain\\r\\n\\r\\ncount=%s\\n' \"$n\"\n",
	// web's page: db's address from the network's resolver (the image's
	// static busybox cannot resolve through glibc; see TestNetworkNamesAndNetworks),
	// then db's page over nc.
	"www/cgi-bin/hit": "#!/bin/sh\n" +
		"ip=$(busybox nslookup db. 2>&1 | busybox awk '/^Name:/ {n=1} n && /^Address/ {print $NF; exit}')\n" +
		"printf 'Content-Type: text/plain\\r\\n\\r\\n'\n" +
		"printf 'GET /cgi-bin/incr HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 10 \"$ip\" 80 | busybox tail -n 1\n" +
		"echo \"db is $ip\"\n",
}

// TestComposeApp: the real docker compose (the pinned plugin, through
// berth compose) runs a two-service application on two VMs: up -d
// --wait waits for db's health check, web reaches db by its service
// name, ps shows the health, logs and exec work, the named volume keeps
// db's count across down and up, and down -v leaves no container, VM,
// network or volume behind. A compose file naming an image that does not
// exist fails with Docker's error, a service on two networks with
// Berth's reason (one NIC per VM), and one that never becomes healthy
// fails up --wait.
func TestComposeApp(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	testenv.RequireTool(t, filepath.Join(home, ".docker", "cli-plugins", "docker-compose"), "docker compose (make compose)")
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/shop", "1", testenv.BusyboxImage(t, composeFiles))
	bh := shortHome(t)
	startDaemon(t, bh)

	dir := t.TempDir()
	port := freePort(t)
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(composeApp, ref, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	compose := func(args ...string) result {
		t.Helper()
		return berth(t, bh, append([]string{"compose", "-f", file, "-p", "shop"}, args...)...)
	}
	// vms counts the QEMU processes running a disk under this Berth home.
	// vms counts the containers' VMs: a fast-start template the engine
	// builds in the background (a layout's second cold start, as on a
	// fresh machine) or a spare VM is not one of the project's.
	vms := func() int {
		out, _ := exec.Command("pgrep", "-af", "qemu-system.*"+bh).Output()
		n := 0
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !strings.Contains(line, "-name berth-template-") && !strings.Contains(line, "-name berth-spare-") {
				n++
			}
		}
		return n
	}
	// hit fetches web's page until db answers through it (web answers
	// without db's count while db's VM is still booting).
	hit := func(want string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			body := getRetry(t, fmt.Sprintf("http://127.0.0.1:%d/cgi-bin/hit", port), time.Until(deadline))
			if strings.Contains(body, "count=") {
				if !strings.Contains(body, want) || !strings.Contains(body, "db is 192.168.") {
					t.Fatalf("web's page: %q, want %q from db, found by name", body, want)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("web's page: %q, no count from db after 90 s", body)
			}
			time.Sleep(time.Second)
		}
	}

	start := time.Now()
	r := mustOK(t, "compose up", compose("up", "-d", "--wait"))
	t.Logf("docker compose up -d --wait: %v", time.Since(start))
	if h, s := strings.Index(r.err, "Container shop-db-1 Healthy"), strings.Index(r.err, "Container shop-web-1 Starting"); h < 0 || s < h {
		t.Errorf("compose up did not start web after db was healthy:\n%s", r.err)
	}
	if n := vms(); n != 2 {
		t.Errorf("%d VMs run the project, want 2 (one per service)", n)
	}
	hit("count=1")
	hit("count=2")

	r = mustOK(t, "compose ps", compose("ps"))
	if !regexp.MustCompile(`shop-db-1 .*Up .*\(healthy\)`).MatchString(r.out) || !strings.Contains(r.out, "shop-web-1") ||
		!strings.Contains(r.out, fmt.Sprintf("127.0.0.1:%d->80/tcp", port)) {
		t.Errorf("compose ps:\n%s", r.out)
	}
	r = mustOK(t, "compose logs", compose("logs", "db"))
	if !strings.Contains(r.out, "db starting at count 0") {
		t.Errorf("compose logs db:\n%s", r.out)
	}
	r = mustOK(t, "compose exec", compose("exec", "-T", "db", "cat", "/data/count"))
	if strings.TrimSpace(r.out) != "2" {
		t.Errorf("compose exec db cat /data/count: %q", r.out)
	}

	r = mustOK(t, "compose port", compose("port", "web", "80"))
	if strings.TrimSpace(r.out) != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Errorf("compose port web 80: %q", r.out)
	}
	// top: the agent lists the service's processes in its VM, with ps
	// -ef's columns; PID 1 is the service's main process.
	topRow := regexp.MustCompile(`(?m)root +1 +0 +\d+ +\d\d:\d\d +\? +\d\d:\d\d:\d\d +busybox httpd -f -p 80 -h /srv$`)
	r = mustOK(t, "compose top", compose("top", "db"))
	if !regexp.MustCompile(`SERVICE +# +UID +PID +PPID +C +STIME +TTY +TIME +CMD`).MatchString(r.out) || !regexp.MustCompile(`(?m)^db +1 +root +1 +0 `).MatchString(r.out) || !topRow.MatchString(r.out) {
		t.Errorf("compose top db:\n%s", r.out)
	}
	r = mustOK(t, "docker top", docker(t, bh, "top", "shop-db-1"))
	if !topRow.MatchString(r.out) || strings.Contains(r.out, "guestinit") || strings.Contains(r.out, "berth-") {
		t.Errorf("docker top shop-db-1 (want db's processes only):\n%s", r.out)
	}
	if r = docker(t, bh, "top", "shop-db-1", "aux"); r.code == 0 || !strings.Contains(r.err, `docker top options "aux" are not supported by Berth`) {
		t.Errorf("docker top with ps options: %+v", r)
	}
	mustOK(t, "compose cp", compose("cp", "db:/data/count", filepath.Join(dir, "count")))
	if b, err := os.ReadFile(filepath.Join(dir, "count")); err != nil || string(b) != "2\n" {
		t.Errorf("compose cp db:/data/count: %q, %v", b, err)
	}
	// restart boots db's VM again: its name answers again, the count goes on.
	mustOK(t, "compose restart", compose("restart", "db"))
	hit("count=3")
	r = mustOK(t, "compose run --rm", compose("run", "--rm", "db", "cat", "/data/count"))
	if strings.TrimSpace(r.out) != "3" {
		t.Errorf("compose run --rm db cat /data/count: %q", r.out)
	}

	// down keeps the named volume; up again starts from its count.
	mustOK(t, "compose down", compose("down"))
	if r := mustOK(t, "ps -a", docker(t, bh, "ps", "-a", "-q")); strings.TrimSpace(r.out) != "" {
		t.Fatalf("containers left after compose down: %q", r.out)
	}
	if r := mustOK(t, "network ls", docker(t, bh, "network", "ls", "-q", "--filter", "label=com.docker.compose.project=shop")); strings.TrimSpace(r.out) != "" {
		t.Fatalf("project network left after compose down: %q", r.out)
	}
	if r := mustOK(t, "volume ls", docker(t, bh, "volume", "ls", "-q")); strings.TrimSpace(r.out) != "shop_dbdata" {
		t.Fatalf("volumes after compose down: %q, want shop_dbdata", r.out)
	}
	// up again, attached: the services' output comes through, and Ctrl-C
	// (SIGINT) stops them.
	up := exec.Command(berthBin, "compose", "-f", file, "-p", "shop", "up")
	up.Env = append(os.Environ(), "BERTH_HOME="+bh)
	var upOut testenv.SyncBuffer
	up.Stdout, up.Stderr = &upOut, &upOut
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	upDone := make(chan error, 1)
	go func() { upDone <- up.Wait() }()
	t.Cleanup(func() { up.Process.Kill() })
	hit("count=4")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(upOut.String(), "db-1  | db starting at count 3") {
		if time.Now().After(deadline) {
			t.Fatalf("compose up (attached) did not show db's output:\n%s", upOut.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := up.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-upDone:
	case <-time.After(60 * time.Second):
		t.Fatalf("compose up (attached) still running 60 s after SIGINT:\n%s", upOut.String())
	}
	if out := upOut.String(); !strings.Contains(out, "Container shop-web-1 Stopped") || !strings.Contains(out, "Container shop-db-1 Stopped") {
		t.Errorf("compose up (attached) after SIGINT:\n%s", out)
	}
	r = mustOK(t, "compose ps -a", compose("ps", "-a", "--format", "{{.Service}} {{.State}}"))
	if got := strings.Fields(r.out); strings.Join(got, " ") != "db exited web exited" {
		t.Errorf("compose ps -a after the attached up stopped: %q", r.out)
	}

	mustOK(t, "compose down -v", compose("down", "-v"))
	nothingLeft(t, bh, vms, "compose down -v")

	// An image that does not exist: compose shows Docker's error.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("services:\n  ghost:\n    image: "+reg.Host+"/test/nope:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = berth(t, bh, "compose", "-f", bad, "-p", "bad", "up", "-d")
	if r.code == 0 || !strings.Contains(r.err, "Error response from daemon") || !strings.Contains(r.err, "manifest for "+reg.Host+"/test/nope:1 not found") {
		t.Fatalf("compose up of a missing image: %+v", r)
	}
	t.Logf("compose up of a missing image:\n%s", r.err)

	// A service on two networks: a VM has one NIC, so Berth refuses it
	// at create, saying why; down removes the networks compose made.
	two := filepath.Join(dir, "two.yaml")
	if err := os.WriteFile(two, []byte("services:\n  two:\n    image: "+ref+"\n    networks: [a, b]\nnetworks:\n  a: {}\n  b: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = berth(t, bh, "compose", "-f", two, "-p", "two", "up", "-d")
	if r.code == 0 || !strings.Contains(r.err, "connecting a container to more than one network is not supported yet by Berth") {
		t.Errorf("compose up of a service on two networks: %+v", r)
	}
	mustOK(t, "compose down two", berth(t, bh, "compose", "-f", two, "-p", "two", "down"))
	if r := mustOK(t, "network ls", docker(t, bh, "network", "ls", "-q", "--filter", "type=custom")); strings.TrimSpace(r.out) != "" {
		t.Errorf("networks left after compose down of two: %q", r.out)
	}

	// A service that never becomes healthy: up --wait fails naming it,
	// and its health log says why; down cleans up.
	sick := filepath.Join(dir, "sick.yaml")
	if err := os.WriteFile(sick, []byte(fmt.Sprintf(composeSick, ref)), 0o644); err != nil {
		t.Fatal(err)
	}
	r = berth(t, bh, "compose", "-f", sick, "-p", "sick", "up", "-d", "--wait")
	if r.code == 0 || !strings.Contains(r.err, "container sick-sick-1 is unhealthy") {
		t.Errorf("compose up --wait of a service that never becomes healthy: %+v", r)
	}
	r = mustOK(t, "inspect sick", docker(t, bh, "inspect", "--format", "{{.State.Health.Status}} {{(index .State.Health.Log 0).Output}}", "sick-sick-1"))
	if !strings.HasPrefix(r.out, "unhealthy not ready") {
		t.Errorf("sick's health: %q", r.out)
	}
	mustOK(t, "compose down sick", berth(t, bh, "compose", "-f", sick, "-p", "sick", "down"))
	if n := vms(); n != 0 {
		t.Errorf("%d VMs left after compose down of sick", n)
	}

	testComposeEngineKilled(t, bh, file, vms, hit)
}

// testComposeEngineKilled: the engine dies (SIGKILL) while docker compose
// up -d is creating the project's services: both containers created, db's
// VM booting (compose's start of db in flight), web waiting for db's
// health. After the engine's restart compose ps shows what is true (web
// created and never started; db exited, its start ended by the engine's
// death, with that reason in inspect), up -d --wait finishes the job, and
// down -v leaves no container, network, volume or VM behind.
func testComposeEngineKilled(t *testing.T, bh, file string, vms func() int, hit func(want string)) {
	start := time.Now()
	defer func() { t.Logf("engine killed during compose up: %v", time.Since(start)) }()
	up := exec.Command(berthBin, "compose", "-f", file, "-p", "shop", "up", "-d")
	up.Env = append(os.Environ(), "BERTH_HOME="+bh)
	var upOut testenv.SyncBuffer
	up.Stdout, up.Stderr = &upOut, &upOut
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	upDone := make(chan error, 1)
	go func() { upDone <- up.Wait() }()
	t.Cleanup(func() { up.Process.Kill() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		// compose asked to start db and db's VM is up: its start is under way.
		if strings.Contains(upOut.String(), "Container shop-db-1 Starting") && vms() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("compose up -d did not start db's VM in 60 s:\n%s", upOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := runningDaemon(t, bh).Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-upDone:
		if err == nil {
			t.Errorf("compose up -d succeeded though the engine was killed under it:\n%s", upOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("compose up -d still running 60 s after the engine was killed:\n%s", upOut.String())
	}
	t.Logf("compose up -d when the engine was killed:\n%s", upOut.String())
	deadline = time.Now().Add(20 * time.Second)
	for vms() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d VMs outlived the killed engine", vms())
		}
		time.Sleep(50 * time.Millisecond)
	}

	startDaemon(t, bh)
	r := mustOK(t, "compose ps -a after the engine's restart", berth(t, bh, "compose", "-f", file, "-p", "shop", "ps", "-a", "--format", "{{.Service}} {{.State}}"))
	if got := strings.Join(strings.Fields(r.out), " "); got != "db exited web created" {
		t.Errorf("compose ps -a after the engine's restart: %q, want db exited and web created", r.out)
	}
	r = mustOK(t, "inspect db", docker(t, bh, "inspect", "--format", "{{.State.Error}}", "shop-db-1"))
	if !strings.Contains(r.out, "Berth's engine stopped while the container was") {
		t.Errorf("db's State.Error after the engine's restart: %q, want the reason", r.out)
	}
	if r = mustOK(t, "compose ps", berth(t, bh, "compose", "-f", file, "-p", "shop", "ps", "-q")); strings.TrimSpace(r.out) != "" {
		t.Errorf("compose ps after the engine's restart shows running containers: %q", r.out)
	}
	// up again finishes what the killed one began (db's count starts on
	// the fresh volume).
	mustOK(t, "compose up -d --wait after the engine's restart", berth(t, bh, "compose", "-f", file, "-p", "shop", "up", "-d", "--wait"))
	hit("count=1")
	mustOK(t, "compose down -v after the engine's restart", berth(t, bh, "compose", "-f", file, "-p", "shop", "down", "-v"))
	nothingLeft(t, bh, vms, "compose down -v (engine killed during up)")
}

// nothingLeft fails t when the engine on bh still has a container,
// volume, custom network or VM after what.
func nothingLeft(t *testing.T, bh string, vms func() int, what string) {
	t.Helper()
	for kind, args := range map[string][]string{
		"containers": {"ps", "-a", "-q"},
		"volumes":    {"volume", "ls", "-q"},
		"networks":   {"network", "ls", "-q", "--filter", "type=custom"},
	} {
		if r := mustOK(t, kind, docker(t, bh, args...)); strings.TrimSpace(r.out) != "" {
			t.Errorf("%s left after %s: %q", kind, what, r.out)
		}
	}
	if n := vms(); n != 0 {
		t.Errorf("%d VMs left after %s", n, what)
	}
}

// composeSick is a service whose health check always fails.
const composeSick = `
services:
  sick:
    image: %s
    command: ["sleep", "600"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "sh", "-c", "echo not ready; exit 1"]
      interval: 1s
      retries: 2
`
