package launcher

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/vmm"
)

// machineVM adapts a started vmm.Machine to what a container drives.
type machineVM struct {
	m          vmm.Machine
	consoleLog string
	done       chan struct{}

	mu  sync.Mutex
	err error
}

var _ container.VM = (*machineVM)(nil)

// newMachineVM adapts m and follows it until it ends: Err is nil for a
// power-off and says why otherwise.
func newMachineVM(m vmm.Machine, consoleLog string) *machineVM {
	v := &machineVM{m: m, consoleLog: consoleLog, done: make(chan struct{})}
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

// ConsoleTail returns the last n lines of the console log.
func (v *machineVM) ConsoleTail(n int) string {
	f, err := os.Open(v.consoleLog)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
