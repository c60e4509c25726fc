// Package backend picks the engine/vmm backend for the running OS, so the
// rest of the engine never names one: QEMU on Linux
// (engine/vmm/qemu), Virtualization.framework on macOS (engine/vmm/vz).
//
// It is a package of its own because the backends import engine/vmm for
// its types; engine/vmm cannot import them back.
package backend
