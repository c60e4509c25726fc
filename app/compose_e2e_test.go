package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
