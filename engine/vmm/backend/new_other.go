//go:build !linux && !darwin

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

// New fails: Berth runs micro-VMs on Linux and macOS only.
func New(cfg vmm.Config) (vmm.Machine, error) {
	return nil, errdefs.NotImplemented(fmt.Errorf("micro-VMs on %s: no backend", runtime.GOOS))
}

// Describe says there is no backend.
func Describe() string { return "none" }

// GuestConfigs are all of kernel.GuestConfigs: there is no backend here.
func GuestConfigs() []kernel.ConfigNeed { return kernel.GuestConfigs() }

// SweepOrphans has nothing to sweep: no VM runs here.
func SweepOrphans(ctx context.Context, stateDirs string) ([]Orphan, error) { return nil, nil }
