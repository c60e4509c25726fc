package launcher

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"

	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/vmm"
)

// machineVM adapts a started vmm.Machine to what a container drives.
type machineVM struct {
	m    vmm.Machine
	done chan struct{}

	mu  sync.Mutex
	err error
}

var _ container.VM = (*machineVM)(nil)

// newMachineVM adapts m and follows it until it ends: Err is nil for a
// power-off and says why otherwise.
func newMachineVM(m vmm.Machine) *machineVM {
	v := &machineVM{m: m, done: make(chan struct{})}
	go func() {
		exit, err := m.Wait(context.Background())
		v.mu.Lock()
		switch {
		case err != nil:
			v.err = err
		case exit.Reason != vmm.ExitPowerOff:
			v.err = errors.New(exit.String())
		}
		v.mu.Unlock()
		close(v.done)
	}()
	return v
}

func (v *machineVM) Dialer() transport.Dialer { return v.m.Dialer() }

func (v *machineVM) SharePort(i int) (net.Conn, error) { return v.m.SharePort(i) }

func (v *machineVM) Network() *vmm.GuestNetwork { return v.m.GuestNetwork() }

// Pid is the VM's process: the hypervisor's where it has its own, else
// the engine's (Virtualization.framework runs VMs in-process).
func (v *machineVM) Pid() int {
	if p, ok := v.m.(interface{ Pid() int }); ok {
		return p.Pid()
	}
	return os.Getpid()
}

func (v *machineVM) Backend() string { return v.m.Backend() }

func (v *machineVM) Done() <-chan struct{} { return v.done }

func (v *machineVM) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

func (v *machineVM) Kill() error { return v.m.Kill(context.Background()) }

// ConsoleTail returns the last n lines of the VM's console.
func (v *machineVM) ConsoleTail(n int) string { return v.m.ConsoleTail(n) }

// GuestShare says how the guest mounts the share s.
func (v *machineVM) GuestShare(s vmm.Share) vmm.GuestShare { return v.m.GuestShare(s) }
