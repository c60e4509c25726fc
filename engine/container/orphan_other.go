//go:build !linux

package container

import "log/slog"

// reapOrphan has nothing to do where VMs run inside the engine's own
// process (Virtualization.framework): they died with it.
func reapOrphan(pid int, dir string, log *slog.Logger) {}
