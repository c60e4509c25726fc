// Package backend picks the engine/vmm backend for the running OS, so the
// rest of the engine never names one: QEMU on Linux
// (engine/vmm/qemu), Virtualization.framework on macOS (engine/vmm/vz).
// Everything the engine asks of "the backend" goes through here: a new
// Machine (New), the kernel features its guests use (GuestConfigs), its
// name and accelerator for status displays (Describe), and stopping the
// VMs an engine that died left running (SweepOrphans).
//
// It is a package of its own because the backends import engine/vmm for
// its types; engine/vmm cannot import them back.
package backend

// Orphan is a VM process SweepOrphans found whose engine is gone.
type Orphan struct {
	// ID is the VM's ID.
	ID string
	// PID is its process; 0 when it was gone already.
	PID int
	// Killed says SweepOrphans stopped it.
	Killed bool
}
