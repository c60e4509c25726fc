package kernel

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
)

// Support says how a kernel provides a config option.
type Support int

// The ways a kernel can provide an option.
const (
	// Unknown: the kernel came without a config file.
	Unknown Support = iota
	// Missing: the option is not set.
	Missing
	// Builtin: =y.
	Builtin
	// Module: =m; the .ko must be loaded (Berth's initramfs carries it).
	Module
)

func (s Support) String() string {
	switch s {
	case Missing:
		return "missing"
	case Builtin:
		return "built in"
	case Module:
		return "module"
	}
	return "unknown"
}

// GuestConfigs are the config options (without the CONFIG_ prefix) the
// Berth guest uses, each with what it is for.
func GuestConfigs() []ConfigNeed {
	return []ConfigNeed{
		{"VIRTIO_BLK", "the container's root disk (virtio-blk)"},
		{"EXT4_FS", "the container's root filesystem (ext4)"},
		{"VIRTIO_CONSOLE", "the console on Virtualization.framework and the virtio-serial agent channel under QEMU"},
		{"VSOCKETS", "the agent channel (vsock)"},
		{"VIRTIO_VSOCKETS", "the agent channel (virtio-vsock)"},
		{"VIRTIO_NET", "networking (virtio-net)"},
		{"NET_9P_VIRTIO", "folder sharing under QEMU (virtio-9p)"},
		{"NET_9P_FD", "run-time folder sharing (9P over an agent connection, trans=fd)"},
		{"9P_FS", "folder sharing (9p, at boot under QEMU and at run time everywhere)"},
		{"FUSE_FS", "folder sharing on Virtualization.framework (virtio-fs needs FUSE)"},
		{"VIRTIO_FS", "folder sharing on Virtualization.framework (virtio-fs)"},
		{"OVERLAY_FS", "overlay mounts inside containers"},
	}
}

// ConfigNeed is one config option the guest needs and the reason.
type ConfigNeed struct {
	// Option is the config name without the CONFIG_ prefix.
	Option string
	// For says what breaks without it.
	For string
}

// Support reports how the kernel provides option (without the CONFIG_
// prefix).
func (k *Kernel) Support(option string) Support {
	if k.Config == nil {
		return Unknown
	}
	switch k.Config["CONFIG_"+option] {
	case "y":
		return Builtin
	case "m":
		return Module
	}
	return Missing
}

// Check verifies that the kernel provides every option in needs, built in
// or as a module it ships. The error names each missing CONFIG_ option and
// what it is needed for. A kernel without a config file passes: there is
// nothing to check it against.
func (k *Kernel) Check(needs ...ConfigNeed) error {
	var missing []string
	for _, n := range needs {
		switch k.Support(n.Option) {
		case Missing:
			missing = append(missing, fmt.Sprintf("CONFIG_%s (needed for %s)", n.Option, n.For))
		case Module:
			if k.ModulesDir == "" {
				missing = append(missing, fmt.Sprintf("CONFIG_%s is a module but the kernel comes without lib/modules/%s (needed for %s)", n.Option, k.Version, n.For))
			}
		}
	}
	if len(missing) > 0 {
		return errdefs.Conflict(fmt.Errorf("kernel %s lacks %s", k, strings.Join(missing, "; ")))
	}
	return nil
}

// readConfig parses a kernel .config: CONFIG_X=v lines, comments skipped,
// quotes kept off string values.
func readConfig(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read kernel config %s: %w", path, err)
	}
	defer f.Close()
	cfg := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "CONFIG_") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		cfg[k] = strings.Trim(v, `"`)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kernel config %s: %w", path, err)
	}
	return cfg, nil
}
