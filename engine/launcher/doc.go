// Package launcher boots the micro-VM each container runs in: it is the
// engine's container.VMLauncher, the seam between a container and the VM
// under it.
//
// For each container start, Prepare (before the boot timeout counts)
//
//  1. resolves the guest kernel (kernel.Resolve: $BERTH_KERNEL, the
//     home's kernel.json, the kernel cache, /boot, the pinned default);
//  2. finds guestinit for the kernel's architecture (FindGuestinit);
//  3. prepares the boot files in HOME/cache: the uncompressed boot image
//     (kernel.Kernel.BootImage) and the initramfs around guestinit with
//     the modules the backend's guests load (initramfs.Build), both kept
//     by content and streamed, never held whole in memory;
//
// and Launch, given those files (container.LaunchRequest.Boot),
//
//  4. builds the vmm.Config (the container's root disk, its size, its
//     console log, the agent's ping and shutdown hooks) and starts a
//     vmm.Machine on the platform's backend (engine/vmm/backend; the
//     launcher never names one);
//  5. returns the Machine adapted to container.VM: the agent's dialer,
//     the backend's address plan for the guest (vmm.GuestNetwork), the
//     VM's end and its console tail.
//
// A Launcher owns an in-memory cache of file digests keyed by file
// identity (path, size, modification time, inode), so the ~20 MB of
// kernel and guestinit are hashed once per file, not once per start.
//
// What later work adds to a container's VM — terminals, shared folders,
// network modes — goes through here: LaunchRequest says what the
// container needs, the launcher turns it into vmm.Config for the backend.
package launcher
