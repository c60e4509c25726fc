// Package guest is the guest half of the agent: the ttrpc server guestinit
// runs, its process manager, and the per-container init that guestinit
// re-executes as PID 1 of each container's PID namespace. It is
// Linux-only and guest-only: the host never imports it.
//
// # Processes and namespaces
//
// A process created with no container ID starts a container. guestinit
// re-executes itself (/proc/self/exe, argv[0] "berth-init") in new mount,
// PID, UTS, IPC and cgroup namespaces, in a cgroup of its own under
// Config.CgroupParent (removed once the init is reaped). That container
// init (containerInit):
//
//  1. makes every mount a slave of guestinit's (mounts under the rootfs
//     made later by the agent's Mount call propagate in);
//  2. bind-mounts the rootfs onto itself and mounts proc, sysfs and
//     cgroup2 at /sys/fs/cgroup (read-only, or read-write for a privileged
//     container), a tmpfs /dev with the usual nodes bound from the guest's /dev,
//     /dev/pts bound from the guest (the agent allocates ptys there),
//     /dev/shm and /dev/mqueue of its own (containerMounts), each on a
//     mount point resolved inside the rootfs; a Mount call that makes the
//     rootfs read-only first creates the mount points the image lacks;
//  3. pivot_root(2)s into the rootfs and detaches the old root;
//  4. sets the hostname;
//  5. starts the container's processes on guestinit's request, resolving
//     users in the container's /etc/passwd and /etc/group: the main
//     process first, as PID 1 of a PID namespace nested in the init's (a
//     re-execution of guestinit, argv[0] "berth-main", mounts that
//     namespace's /proc and executes the command; see pidns_linux.go),
//     then exec'd processes, which join that namespace with setns(2) —
//     so `ps aux` in the container shows the container's processes only,
//     as with Docker; with Init (docker run --init) berth-init is PID 1 of
//     the nested namespace too, reaping orphans and forwarding signals;
//  6. reaps the processes it started, forwards the signals it gets to the
//     main process, and reports each exit back;
//  7. when the main process exits (the kernel then ends the rest of its
//     namespace), reports the exits of what is left and exits itself.
//
// guestinit talks to the container init over a SOCK_SEQPACKET socketpair
// (fd 3 in the init): JSON messages, with the stdio descriptors attached
// as SCM_RIGHTS. Because the container init already lives in the
// mount, UTS and IPC namespaces, "exec into a running container" needs
// no setns(2) of a mount namespace, which a multi-threaded Go program
// cannot do (joining a PID namespace it can, on one thread).
//
// # Stdio
//
// Each process's stdio rides connections of its own (the ports named in
// CreateProcess), and neither side ever half-closes one: vz's vsock
// connections cannot. Stdin's EOF is in-band: CloseStdin names how many
// bytes of the stdin stream precede it, and the process's stdin feed
// (stdinFeed, one goroutine doing every write to the process) delivers
// that many before it closes the pipe (or types ^D on a tty), whichever
// of the stream and the call arrives first. An output stream's end is a
// full close of its connection, after the process exited and the
// stream's last byte was written.
//
// A program that links this package must call RunIfContainerInit first
// thing in main (and in TestMain).
package guest
