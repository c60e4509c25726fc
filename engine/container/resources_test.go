package container

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// TestResourcesCheckedAtCreate: CPUs and memory beyond the host's, or
// below a VM's minimum, fail the create with a 400 that names the flag
// and the limit, before any image is touched.
func TestResourcesCheckedAtCreate(t *testing.T) {
	l := newLifecycle(t) // limits: 8 CPUs, 8 GiB
	for _, tc := range []struct {
		res  mobycontainer.Resources
		want string // "" = accepted
	}{
		{mobycontainer.Resources{NanoCPUs: 1000e9}, "--cpus 1000: this machine has 8 CPUs"},
		{mobycontainer.Resources{NanoCPUs: 8.5e9}, "--cpus 8.5: this machine has 8 CPUs"},
		{mobycontainer.Resources{NanoCPUs: -1e9}, "invalid --cpus: -1 must be positive"},
		{mobycontainer.Resources{Memory: 100000 << 30}, "--memory 100000 GiB: this machine has 8 GiB of memory"},
		{mobycontainer.Resources{Memory: 8<<30 + 1}, "--memory 8.0 GiB: this machine has 8 GiB of memory"},
		{mobycontainer.Resources{Memory: 1 << 20}, "a container's VM needs at least 64 MiB"},
		{mobycontainer.Resources{Memory: -5}, "a container's VM needs at least 64 MiB"},
		{mobycontainer.Resources{NanoCPUs: 8e9, Memory: 8 << 30}, ""},
		{mobycontainer.Resources{NanoCPUs: 0.5e9, Memory: 64 << 20}, ""},
	} {
		if tc.want == "" {
			if err := validateResources(&mobycontainer.HostConfig{Resources: tc.res}, l.m.limits); err != nil {
				t.Errorf("%+v refused: %v", tc.res, err)
			}
			continue
		}
		_, err := l.m.Create(context.Background(), CreateRequest{
			Config:     &mobycontainer.Config{Image: "busybox"},
			HostConfig: &mobycontainer.HostConfig{Resources: tc.res},
		})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || errdefs.HTTPStatus(err) != 400 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cpus %d memory %d: %v, want a 400 saying %q", tc.res.NanoCPUs, tc.res.Memory, err, tc.want)
		}
	}
}

func TestDetectHostLimits(t *testing.T) {
	l, err := DetectHostLimits()
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skipf("no physical memory source on %s", runtime.GOOS)
	}
	if err != nil {
		t.Fatal(err)
	}
	if l.CPUs != runtime.NumCPU() || l.MemoryBytes < 64<<20 {
		t.Fatalf("host limits %+v", l)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		100000 << 30:     "100000 GiB",
		16 << 30:         "16 GiB",
		512 << 20:        "512 MiB",
		2 << 40:          "2 TiB",
		16663486464:      "15.5 GiB",
		1<<30 + 1:        "1.0 GiB",
		3 << 10:          "3 KiB",
		100:              "100.0 B",
		(1 << 30) * 1536: "1536 GiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
