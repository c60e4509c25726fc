// Package qemu is the Linux backend of engine/vmm: each micro-VM is a
// qemu-system-x86_64 (q35) or qemu-system-aarch64 (virt) process started
// from PATH, with KVM when it works and TCG otherwise.
//
// The package provides a vmm.Driver — start QEMU, press its power button
// over QMP, kill it, say how it ended (QMP's shutdown reason, its exit
// status, its stderr) — and Machine runs it under vmm.VM's lifecycle
// policy, shared with every backend.
//
// The VM gets only what a container needs: a directly booted kernel and
// initramfs (no firmware menus, no option ROMs: -nodefaults), virtio-blk
// disks, a virtio-net NIC behind QEMU's user-mode NAT, virtio-9p shares,
// a serial console, and the agent channel — vhost-vsock where the host has
// /dev/vhost-vsock, otherwise one virtio-serial port carrying yamux
// streams (engine/agent/transport). QMP, the console and the virtio-serial
// port are socketpairs QEMU inherits, so no socket paths (and their length
// limits or stale files) are involved.
//
// Boot speed under TCG (docs/BENCHMARKS.md): the kernel should be the
// uncompressed vmlinux (kernel.Kernel.BootImage), x86 uses qboot as
// firmware when it is installed (/usr/share/qemu/qboot.rom) and
// "-cpu max" (every feature TCG emulates, so x86-64-v2 images run), arm64
// uses "-cpu cortex-a72" (emulated pointer authentication makes "max"
// 3-4x slower).
//
// QEMU runs in its own process group with Pdeathsig SIGKILL, so it dies
// with the engine; a pid file in the VM's StateDir lets Sweep kill QEMU
// processes whose engine is gone.
package qemu
