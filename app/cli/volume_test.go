package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	mobycontainer "github.com/moby/moby/api/types/container"
)

// TestMountFlags: -v and --mount become Docker's request fields as the
// docker CLI makes them, with relative host paths made absolute.
func TestMountFlags(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	cfg, hc := &mobycontainer.Config{}, &mobycontainer.HostConfig{}
	err = mountFlags(
		[]string{"/h:/c:ro", "./rel:/r", "~/x:/x", "named:/n", "/anon"},
		[]string{"type=bind,source=sub,target=/s,readonly", "type=volume,source=v,target=/v"},
		cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/h:/c:ro", filepath.Join(wd, "rel") + ":/r", filepath.Join(home, "x") + ":/x", "named:/n"}
	if strings.Join(hc.Binds, " ") != strings.Join(want, " ") {
		t.Errorf("Binds = %q, want %q", hc.Binds, want)
	}
	if _, ok := cfg.Volumes["/anon"]; !ok || len(cfg.Volumes) != 1 {
		t.Errorf("Config.Volumes = %v", cfg.Volumes)
	}
	if len(hc.Mounts) != 2 || hc.Mounts[0].Source != filepath.Join(wd, "sub") || !hc.Mounts[0].ReadOnly || hc.Mounts[1].Source != "v" {
		t.Errorf("Mounts = %+v", hc.Mounts)
	}
	err = mountFlags(nil, []string{"type=bind,target=/x"}, cfg, hc)
	if err == nil || !strings.Contains(err.Error(), `invalid argument "type=bind,target=/x" for "--mount" flag: source is required`) {
		t.Errorf("--mount without a source: %v", err)
	}
}
