package engine

import (
	"context"
	"errors"
	"log/slog"

	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
)

// vmLauncher boots container VMs on this platform's backend.
type vmLauncher struct {
	home home.Home
	log  *slog.Logger
}

func newVMLauncher(h home.Home, log *slog.Logger) *vmLauncher { return &vmLauncher{home: h, log: log} }

// Launch is wired to engine/vmm once the backend lands.
func (l *vmLauncher) Launch(ctx context.Context, req container.LaunchRequest) (container.VM, error) {
	return nil, errdefs.Unavailable(errors.New("no VM backend is wired into the engine yet"))
}
