// Package vz is the macOS backend of engine/vmm: each micro-VM runs in
// Virtualization.framework through github.com/Code-Hex/vz/v3.
//
// The VM gets a directly booted Linux kernel (an uncompressed arm64 Image:
// kernel.Kernel.BootImage unwraps Image.gz) and initramfs, virtio-blk
// disks (cached, fsync on flush), a virtio-net NIC behind the framework's
// NAT with a MAC derived from the container ID, a virtio-vsock device for
// the agent, a virtio console to the console log, an entropy device, a
// traditional memory balloon, and virtio-fs for boot-time shares. The
// framework runs each VM on its own dispatch queue.
//
// The package provides a vmm.Driver (create and start the framework's VM,
// request a stop, stop it, follow its state) and Machine runs it under
// vmm.VM's lifecycle policy, shared with every backend.
//
// All code is in _darwin.go files. It is type-checked on Linux (go run
// ./app/darwincheck) but has never run here: no claim is made that it
// works until it has been run on a Mac.
package vz

// Name is the backend's name in status displays.
const Name = "vz"
