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

func (n networks) Attach(ctx context.Context, req network.AttachRequest) (container.NetworkAttachment, error) {
	a, err := n.m.Attach(ctx, req)
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (n networks) Release(id string) error { return n.m.Release(id) }

func (n networks) Resolve(ref string) (string, error) {
	info, err := n.m.Get(ref)
	if err != nil {
		return "", err
	}
	return info.Name, nil
}

func (n networks) Rename(id, name string) { n.m.Rename(id, name) }
