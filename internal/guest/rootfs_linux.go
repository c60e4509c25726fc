package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// setupContainer does steps 1-4 of the package comment.
func setupContainer(spec *initSpec) error {
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make mounts slaves: %w", err)
	}
	root := spec.Rootfs
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s: %w", root, err)
	}
	if err := mountContainerFilesystems(root, spec.Privileged); err != nil {
		return err
	}
	if err := exposeStage(root, spec.StageExe); err != nil {
		return err
	}
	if err := pivotRoot(root); err != nil {
		return err
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", spec.Hostname, err)
		}
	}
	return nil
}

// containerMount is one filesystem a container init mounts at target, a
// path relative to the rootfs.
type containerMount struct {
	target, fstype, source string
	flags                  uintptr
	data                   string
	// optional: a kernel without the filesystem (ENODEV) skips it.
	optional bool
}

// containerMounts are the filesystems every container gets, in order:
// proc, sysfs, cgroup2 at /sys/fs/cgroup (the container's cgroup
// namespace, so its own cgroup is the root it sees), a tmpfs /dev, the
// guest's /dev/pts, and /dev/shm and /dev/mqueue of its own. sysfs and
// cgroup2 are read-only unless privileged, as Docker mounts them: a
// privileged container (the builder's buildkitd, whose runc makes a
// cgroup per RUN step) may write both.
func containerMounts(privileged bool) []containerMount {
	const nsd = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	var ro uintptr = unix.MS_RDONLY
	if privileged {
		ro = 0
	}
	return []containerMount{
		{target: "proc", fstype: "proc", source: "proc", flags: nsd},
		{target: "sys", fstype: "sysfs", source: "sysfs", flags: nsd | ro},
		{target: "sys/fs/cgroup", fstype: "cgroup2", source: "cgroup2", flags: nsd | ro, optional: true},
		{target: "dev", fstype: "tmpfs", source: "tmpfs", flags: unix.MS_NOSUID | unix.MS_STRICTATIME, data: "mode=755,size=65536k"},
		{target: "dev/pts", source: "/dev/pts", flags: unix.MS_BIND},
		{target: "dev/shm", fstype: "tmpfs", source: "shm", flags: nsd, data: "mode=1777,size=65536k"},
		{target: "dev/mqueue", fstype: "mqueue", source: "mqueue", flags: nsd},
	}
}

// makeMountPoints creates, in the rootfs itself, the directories the
// container mounts go on (those not inside another container mount), so
// that a container starts on an image that lacks them even once the
// rootfs is read-only (docker run --read-only), as runc does.
func makeMountPoints(root string) error {
	for _, m := range containerMounts(false) {
		if strings.Contains(m.target, "/") {
			continue // inside the /sys or /dev mount
		}
		if err := mkdirInRoot(root, m.target); err != nil {
			return fmt.Errorf("create mount point /%s in the rootfs: %w", m.target, err)
		}
	}
	return nil
}

// mountContainerFilesystems mounts containerMounts inside root and fills
// /dev.
func mountContainerFilesystems(root string, privileged bool) error {
	for _, m := range containerMounts(privileged) {
		if err := mountIn(root, m); err != nil {
			if m.optional && errors.Is(err, unix.ENODEV) {
				continue
			}
			return err
		}
	}
	dev, err := resolveInRoot(root, "dev")
	if err != nil {
		return fmt.Errorf("find /dev in the container: %w", err)
	}
	return populateDev(dev)
}

// mountIn mounts m inside root, creating its mount point; symlinks on the
// way resolve inside root.
func mountIn(root string, m containerMount) error {
	if err := mkdirInRoot(root, m.target); err != nil {
		return fmt.Errorf("create mount point /%s in the container: %w", m.target, err)
	}
	fd, err := openInRoot(root, m.target)
	if err != nil {
		return fmt.Errorf("open mount point /%s in the container: %w", m.target, err)
	}
	defer unix.Close(fd)
	if err := unix.Mount(m.source, fdPath(fd), m.fstype, m.flags, m.data); err != nil {
		return fmt.Errorf("mount %s on /%s in the container: %w", m.source, m.target, err)
	}
	return nil
}

// populateDev fills the container's /dev tmpfs: device nodes bound from
// the guest's /dev, and the usual symlinks.
func populateDev(dev string) error {
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := filepath.Join(dev, n)
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o666)
		if err != nil {
			return fmt.Errorf("create /dev/%s in the container: %w", n, err)
		}
		f.Close()
		if err := unix.Mount("/dev/"+n, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s into the container: %w", n, err)
		}
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("link /dev/%s in the container: %w", l[1], err)
		}
	}
	return nil
}

// pivotRoot makes root the root of this mount namespace and detaches the
// old root (runc's pivot_root(".", ".") way, which needs no directory).
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("enter rootfs %s: %w", root, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}
