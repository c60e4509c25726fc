package terminal

import (
	"context"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/container"
)

// ManagerBackend is the Backend of sessions in m's containers.
func ManagerBackend(m *container.Manager) Backend { return managerBackend{m} }

type managerBackend struct{ m *container.Manager }

func (b managerBackend) Container(ref string) (ContainerInfo, error) {
	c, err := b.m.Get(ref)
	if err != nil {
		return ContainerInfo{}, err
	}
	s := c.Snapshot()
	return ContainerInfo{ID: s.Spec.ID, Name: s.Spec.Name, Image: s.Spec.Image, State: string(s.State.Status)}, nil
}

func (b managerBackend) CreateExec(ctx context.Context, ref string, cfg container.ExecConfig) (string, error) {
	return b.m.CreateExec(ctx, ref, cfg)
}

func (b managerBackend) StartExec(ctx context.Context, id string, stdio agent.Stdio) (int, error) {
	return b.m.StartExec(ctx, id, stdio)
}

func (b managerBackend) ResizeExec(ctx context.Context, id string, rows, cols uint32) error {
	return b.m.ResizeExec(ctx, id, rows, cols)
}

func (b managerBackend) SignalExec(ctx context.Context, id string, sig string) error {
	return b.m.SignalExec(ctx, id, sig)
}

func (b managerBackend) WaitStopped(ctx context.Context, ref string) error {
	_, err := b.m.Wait(ctx, ref, container.WaitNotRunning)
	return err
}
