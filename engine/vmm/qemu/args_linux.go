//go:build linux

package qemu

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/vmm"
)

// Descriptors QEMU inherits (exec.Cmd.ExtraFiles start at 3).
const (
	fdQMP     = 3
	fdConsole = 4
	fdAgent   = 5 // virtio-serial socket or vhost-vsock device
	fdNet     = 6 // the NIC's stream socket, when it joins a Link
)

// fdSharePort is the descriptor of spare share port i's socket
// (vmm.Config.SharePorts): they follow fdNet, or take its place when the
// NIC does not join a Link.
func fdSharePort(cfg vmm.Config, i int) int {
	if cfg.Network != nil && cfg.Network.Link != nil {
		return fdNet + 1 + i
	}
	return fdNet + i
}

// launch holds what the command line depends on besides the Config.
type launch struct {
	accel Accel
	vsock bool   // agent over vhost-vsock (fdAgent is /dev/vhost-vsock)
	cid   uint32 // the guest's vsock CID
	bios  string // x86 firmware; "": QEMU's default (SeaBIOS)
}

// qbootPaths are where Debian's qemu-system-data (and a QEMU installed
// under /usr/local) put qboot, a minimal x86 firmware that only knows how
// to boot a kernel: it starts the guest kernel hundreds of milliseconds
// sooner than SeaBIOS under TCG.
func qbootPaths() []string {
	return []string{"/usr/share/qemu/qboot.rom", "/usr/local/share/qemu/qboot.rom"}
}

// findQboot returns the first qboot.rom that exists, or "".
func findQboot() string {
	for _, p := range qbootPaths() {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// binary is the qemu-system program for a guest architecture.
func binary(arch string) (string, error) {
	switch arch {
	case "amd64":
		return "qemu-system-x86_64", nil
	case "arm64":
		return "qemu-system-aarch64", nil
	}
	return "", fmt.Errorf("no QEMU system emulator for guest architecture %q", arch)
}

// kernelCmdline is the guest kernel's command line: the console, boot
// speed options measured under TCG (docs/BENCHMARKS.md), guestinit's
// root disk and agent transport, then the Config's own.
func kernelCmdline(cfg vmm.Config, l launch) string {
	var args []string
	switch cfg.Arch {
	case "amd64":
		args = []string{"console=ttyS0", "8250.nr_uarts=1", "tsc=reliable", "no_timer_check"}
	case "arm64":
		args = []string{"console=ttyAMA0"}
	}
	// panic=-1: reboot at once on a panic, which -no-reboot turns into
	// QEMU exiting, so a panicked guest never lingers.
	args = append(args, "panic=-1", "quiet", "mitigations=off", "cryptomgr.notests", "rcupdate.rcu_expedited=1")
	args = append(args, vmm.RootParam)
	if l.vsock {
		args = append(args, "berth.transport=vsock")
	} else {
		args = append(args, "berth.transport=serial")
	}
	if cfg.Template || cfg.Restore != "" {
		args = append(args, vmm.TemplateParam)
	}
	if cfg.Cmdline != "" {
		args = append(args, cfg.Cmdline)
	}
	return strings.Join(args, " ")
}

// commandLine builds QEMU's arguments for cfg (already validated). The
// device model is the smallest that does the job: no firmware beyond the
// direct kernel boot, no default devices, no option ROMs.
func commandLine(cfg vmm.Config, l launch) []string {
	a := []string{
		"-name", "berth-" + cfg.ID + ",debug-threads=on",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-m", strconv.Itoa(cfg.MemoryMiB),
		"-smp", strconv.Itoa(cfg.CPUs),
		"-accel", string(l.accel),
	}
	switch cfg.Arch {
	case "amd64":
		a = append(a, "-machine", "q35")
		if l.bios != "" {
			a = append(a, "-bios", l.bios)
		}
		if l.accel == AccelKVM {
			a = append(a, "-cpu", "host")
		} else {
			// Every feature TCG emulates (SSE4.2, POPCNT, AVX2 ...), not
			// the default qemu64 model: images built for x86-64-v2
			// (RHEL 9 and its rebuilds) refuse to start without them.
			a = append(a, "-cpu", "max")
		}
	case "arm64":
		if l.accel == AccelKVM {
			// The host's interrupt controller: most arm64 servers have a
			// GICv3 that cannot present the virt machine's default v2.
			a = append(a, "-machine", "virt,gic-version=host", "-cpu", "host")
		} else {
			a = append(a, "-machine", "virt")
			// Not "max": its emulated pointer authentication makes the
			// boot 3-4x slower under TCG.
			a = append(a, "-cpu", "cortex-a72")
		}
	}
	a = append(a,
		"-kernel", cfg.Kernel,
		"-initrd", cfg.Initramfs,
		"-append", kernelCmdline(cfg, l),
		"-chardev", "socket,id=qmp,fd="+strconv.Itoa(fdQMP),
		"-mon", "chardev=qmp,mode=control",
		"-chardev", "socket,id=con,fd="+strconv.Itoa(fdConsole),
		"-serial", "chardev:con",
	)
	if snapshotLayout(cfg) && cfg.Arch == "amd64" {
		// A VM generation ID that changes on every restore: the guest
		// kernel reseeds its CRNG when it sees the change (the agent's
		// FinishRestore reseeds it again with host entropy). It needs
		// SeaBIOS's ACPI tables: with qboot the guest hangs.
		a = append(a, "-device", "vmgenid,guid=auto")
	}
	for i, d := range append([]vmm.Disk{cfg.Root}, cfg.Disks...) {
		drive := "file=" + escape(d.Path) + ",if=none,id=disk" + strconv.Itoa(i) + ",format=raw,cache=writeback,discard=unmap"
		if i == 0 && snapshotLayout(cfg) {
			// Named nodes: a VM restored ahead of need is handed a
			// container's root disk by reopening rootNode with a new
			// file child (Handover); QEMU refuses to reopen the
			// nodes -drive names itself.
			drive += ",node-name=" + rootNode + ",file.node-name=" + rootNode + "-file"
		}
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		a = append(a, "-drive", drive, "-device", "virtio-blk-pci,drive=disk"+strconv.Itoa(i))
	}
	// One virtio-serial device carries the agent's port (without vsock)
	// and the spare share ports, each a socket whose host end the engine
	// keeps (vmm.Machine.SharePort).
	ports := cfg.SharePorts
	if l.vsock {
		a = append(a, "-device", fmt.Sprintf("vhost-vsock-pci,guest-cid=%d,vhostfd=%d", l.cid, fdAgent))
	} else {
		ports++
	}
	if ports > 0 {
		// Port 0 is kept for a console: the named ports take 1 on.
		a = append(a, "-device", "virtio-serial-pci,max_ports="+strconv.Itoa(ports+1))
	}
	if !l.vsock {
		a = append(a,
			"-chardev", "socket,id=agent,fd="+strconv.Itoa(fdAgent),
			"-device", "virtserialport,chardev=agent,name="+transport.SerialPortName,
		)
	}
	for i := range cfg.SharePorts {
		id := "share" + strconv.Itoa(i)
		a = append(a,
			"-chardev", "socket,id="+id+",fd="+strconv.Itoa(fdSharePort(cfg, i)),
			"-device", "virtserialport,chardev="+id+",name="+vmm.SharePortName(i),
		)
	}
	if cfg.Network != nil {
		netdev := "user,id=net0"
		if cfg.Network.Link != nil {
			// The NIC's frames go over an inherited socket to the
			// engine's switch (engine/network), not to QEMU's slirp.
			netdev = "stream,id=net0,server=off,addr.type=fd,addr.str=" + strconv.Itoa(fdNet)
		} else if cfg.Network.TAP != "" {
			// A TAP device the engine made on a Linux bridge (bridge
			// mode); QEMU opens it by name and runs no scripts.
			netdev = "tap,id=net0,ifname=" + cfg.Network.TAP + ",script=no,downscript=no"
		}
		a = append(a,
			"-netdev", netdev,
			"-device", "virtio-net-pci,netdev=net0,romfile=,mac="+cfg.Network.MAC.String(),
		)
	}
	// One virtio-9p device per share, each its own export: QEMU's local
	// backend resolves every guest path inside the exported directory
	// (each component opened with O_NOFOLLOW relative to the export, since
	// QEMU 2.9), so the guest cannot leave it through ".." or a symlink.
	// security_model=none: QEMU, running as the user who runs Berth,
	// creates the files, so they are that user's on the host; the guest's
	// chown is ignored rather than refused. readonly=on makes QEMU itself
	// refuse writes to a read-only share.
	for i, s := range cfg.Shares {
		fsdev := "local,id=fs" + strconv.Itoa(i) + ",path=" + escape(s.HostPath) + ",security_model=none"
		if s.ReadOnly {
			fsdev += ",readonly=on"
		}
		a = append(a, "-fsdev", fsdev, "-device", "virtio-9p-pci,fsdev=fs"+strconv.Itoa(i)+",mount_tag="+escape(s.Tag))
	}
	if cfg.Restore != "" {
		// 7.2 has no file: migration URI (8.2 does), so the state is
		// streamed in by cat.
		a = append(a, "-incoming", "exec:cat "+shellQuote(cfg.Restore))
	}
	return a
}

// snapshotLayout reports whether cfg boots or restores a template: its
// device layout is the one templates are saved with.
func snapshotLayout(cfg vmm.Config) bool { return cfg.Template || cfg.Restore != "" }

// shellQuote quotes s for sh -c, which QEMU runs exec: migration URIs
// with.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// escape doubles commas, QEMU's escape inside an option value.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
