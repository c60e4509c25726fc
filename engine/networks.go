package engine

import (
	"context"

	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/network"
)

// networks adapts engine/network's Manager to what the container
// manager asks of it.
type networks struct{ m *network.Manager }

var _ container.Networks = networks{}

func (n networks) Attach(ctx context.Context, id string, ports []network.PortSpec) (container.NetworkAttachment, error) {
	a, err := n.m.Attach(ctx, id, ports)
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (n networks) Release(id string) error { return n.m.Release(id) }
