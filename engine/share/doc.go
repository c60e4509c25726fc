// Package share is the host side of folder sharing: the mounts a
// container asks for at create time (-v, --mount, the Docker API's
// HostConfig.Binds and HostConfig.Mounts), the named volumes they may
// name (Store), and how both reach the container's VM (Plan).
//
// # What a container gets
//
// Every mount is a host directory: a bind's source, or a volume's data
// directory under the Berth home (Store). At create time Resolve checks
// the mounts the way Docker's daemon does (absolute targets, no two on
// one target, a bind source that exists — Berth refuses a missing one
// rather than create it, as Apple's container tool does) and creates the
// named volumes used for the first time. At start, Plan turns them into
// one boot-time share per mount (vmm.Share: a virtio-9p device under
// QEMU, an entry of the one virtio-fs multiple-directory device on
// Virtualization.framework) and the agent calls that mount each one in
// the guest: guestinit mounts the share once at a staging point outside
// the container's root and bind-mounts it at the target, read-only when
// asked. A read-only mount is enforced twice: by the read-only bind in
// the guest and by the host (QEMU's readonly fsdev, vz's read-only shared
// directory), so a guest that remounts cannot write either.
//
// # Run-time shares
//
// A folder added to a running container (drag and drop) is not a
// boot-time device: the engine serves it with a 9P2000.L server over an
// agent connection and the guest mounts it with trans=fd. That step adds
// a Mount kind (Kind "share") to the same list, recorded the same way, so
// a restart brings it back as a boot-time share; Plan and the guest's
// staging and bind code are shared by both.
package share
