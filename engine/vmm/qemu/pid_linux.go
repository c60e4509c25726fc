//go:build linux

package qemu

// Pid is the QEMU process's pid once Start has launched it, else 0.
func (m *Machine) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}
