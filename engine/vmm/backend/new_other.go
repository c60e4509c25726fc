//go:build !linux && !darwin

package backend

import (
	"fmt"
	"github.com/berthvm/berth/engine/kernel"
	"runtime"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
)

// Name is the backend New uses on this OS: none.
const Name = ""

// New fails: Berth runs micro-VMs on Linux and macOS only.
func New(cfg vmm.Config) (vmm.Machine, error) {
	return nil, errdefs.NotImplemented(fmt.Errorf("micro-VMs on %s: no backend", runtime.GOOS))
}

// GuestConfigs are all of kernel.GuestConfigs: there is no backend here.
func GuestConfigs() []kernel.ConfigNeed { return kernel.GuestConfigs() }
