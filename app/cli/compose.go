package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/berthvm/berth/engine/plugin"
	"github.com/spf13/cobra"
)

// berth compose: the real Docker Compose (the docker CLI plugin that
// `make compose` builds, or any installed one) run against this Berth's
// socket, with berth's streams, signals and exit status passed through
// (docs/compose.md).

// composeDirs are where the docker CLI looks for its plugins, in its
// order: DOCKER_CONFIG's (default ~/.docker) cli-plugins, then the
// system's.
func composeDirs() []string {
	cfg := os.Getenv("DOCKER_CONFIG")
	if cfg == "" {
		if h, err := os.UserHomeDir(); err == nil {
			cfg = filepath.Join(h, ".docker")
		}
	}
	var dirs []string
	if cfg != "" {
		dirs = append(dirs, filepath.Join(cfg, "cli-plugins"))
	}
	return append(dirs,
		"/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
		"/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins",
		"/Applications/Docker.app/Contents/Resources/cli-plugins")
}

// findCompose returns the docker-compose executable: the plugin in
// composeDirs, else docker-compose on PATH.
func findCompose() (string, error) {
	dirs := composeDirs()
	for _, d := range dirs {
		p := filepath.Join(d, "docker-compose")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("Docker Compose is not installed (no docker-compose in %s, nor on PATH): build the pinned one with `make compose` in Berth's source, or install Docker Compose v2", strings.Join(dirs, ", "))
}

func newComposeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:                "compose [ARGS...]",
		Short:              "Run Docker Compose against Berth (each service in its own VM)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := findCompose()
			if err != nil {
				return err
			}
			h, err := e.home()
			if err != nil {
				return err
			}
			err = runPlugin(cmd.Context(), e, plugin.Plugin{Name: "compose", Path: bin}, h, args)
			var xe *ExitError
			if err != nil && !errors.As(err, &xe) {
				return fmt.Errorf("compose: %w", err)
			}
			return err
		},
	}
}
