package container

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mobycontainer "github.com/moby/moby/api/types/container"
)

func TestHealthConfig(t *testing.T) {
	if hc := healthConfig(&mobycontainer.Config{}); hc != nil {
		t.Fatalf("no health check: %+v", hc)
	}
	if hc := healthConfig(&mobycontainer.Config{Healthcheck: &mobycontainer.HealthConfig{Test: []string{"NONE"}}}); hc != nil {
		t.Fatalf("NONE: %+v", hc)
	}
	hc := healthConfig(&mobycontainer.Config{Healthcheck: &mobycontainer.HealthConfig{Test: []string{"CMD-SHELL", "exit 0"}, Retries: 5}})
	if hc == nil || hc.Interval != 30*time.Second || hc.Timeout != 30*time.Second || hc.StartInterval != 5*time.Second || hc.Retries != 5 {
		t.Fatalf("defaults: %+v", hc)
	}
	if got := probeArgs(hc.Test); strings.Join(got, " ") != "/bin/sh -c exit 0" {
		t.Fatalf("CMD-SHELL args: %q", got)
	}
	if got := probeArgs([]string{"CMD", "curl", "-f", "x"}); strings.Join(got, " ") != "curl -f x" {
		t.Fatalf("CMD args: %q", got)
	}
}

// The image's HEALTHCHECK applies unless the request overrides it, field
// by field (Docker's merge).
func TestMergeImageHealthcheck(t *testing.T) {
	img := &v1.ConfigFile{Config: v1.Config{Cmd: []string{"sh"}, Healthcheck: &v1.HealthConfig{
		Test: []string{"CMD", "true"}, Interval: time.Second, Retries: 7,
	}}}
	out := mergeImageConfig(&mobycontainer.Config{Image: "x"}, img)
	if out.Healthcheck == nil || out.Healthcheck.Test[1] != "true" || out.Healthcheck.Interval != time.Second || out.Healthcheck.Retries != 7 {
		t.Fatalf("from the image: %+v", out.Healthcheck)
	}
	out = mergeImageConfig(&mobycontainer.Config{Image: "x", Healthcheck: &mobycontainer.HealthConfig{Interval: 2 * time.Second}}, img)
	if out.Healthcheck.Test[1] != "true" || out.Healthcheck.Interval != 2*time.Second || out.Healthcheck.Retries != 7 {
		t.Fatalf("--health-interval over the image's: %+v", out.Healthcheck)
	}
	out = mergeImageConfig(&mobycontainer.Config{Image: "x", Healthcheck: &mobycontainer.HealthConfig{Test: []string{"NONE"}}}, img)
	if healthConfig(out) != nil {
		t.Fatalf("--no-healthcheck: %+v", out.Healthcheck)
	}
}

func TestCappedBuffer(t *testing.T) {
	b := &cappedBuffer{max: 5}
	b.Write([]byte("abc"))
	if n, _ := b.Write([]byte("defgh")); n != 5 || b.String() != "abcde" {
		t.Fatalf("capped: %d %q", n, b.String())
	}
}
