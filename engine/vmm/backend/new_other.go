//go:build !linux && !(darwin && cgo && !no_vz)

package backend

import (
	"context"
	"fmt"
	"runtime"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/vmm"
)

// Name is the backend New uses on this OS: none.
const Name = ""

// New fails: Berth runs micro-VMs on Linux, and on macOS only in a build
// with cgo (Virtualization.framework is reached through cgo).
func New(cfg vmm.Config) (vmm.Machine, error) {
	if runtime.GOOS == "darwin" {
		return nil, errdefs.NotImplemented(fmt.Errorf("micro-VMs on macOS: this berth was built without cgo (or with -tags no_vz), so it has no Virtualization.framework backend and is a CLI only; run Berth.app, or build berth on a Mac with cgo (make build)"))
	}
	return nil, errdefs.NotImplemented(fmt.Errorf("micro-VMs on %s: no backend (Berth runs them on Linux and macOS)", runtime.GOOS))
}

// Describe says there is no backend.
func Describe() string { return "none" }

// GuestConfigs are all of kernel.GuestConfigs: there is no backend here.
func GuestConfigs() []kernel.ConfigNeed { return kernel.GuestConfigs() }

// SweepOrphans has nothing to sweep: no VM runs here.
func SweepOrphans(ctx context.Context, stateDirs string) ([]Orphan, error) { return nil, nil }

// TemplateLayout fails: there is no backend here.
func TemplateLayout(cfg vmm.Config) (string, error) {
	return "", errdefs.NotImplemented(fmt.Errorf("fast start: no VM backend on %s", runtime.GOOS))
}

// SpareSupport says whether this backend can hand a running VM to a
// container (fast start's spare VM): there is no backend here.
func SpareSupport() error {
	return errdefs.NotImplemented(fmt.Errorf("no VM backend on %s", runtime.GOOS))
}
