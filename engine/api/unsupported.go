package api

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
	bnet "github.com/berthvm/berth/engine/network"
	mobycontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// A create request asks for many things; the engine implements some.
// Nothing a user asked for is dropped silently: what would change what
// the process sees (mounts, ports, namespaces, privileges, devices) is
// refused with a 400 naming the flag, until the issue that
// implements it; resource tuning that Docker itself discards with a
// warning when the host cannot honour it becomes a Warnings entry, which
// the docker CLI prints.

// unsupported is one create option the engine does not implement yet.
type unsupported struct {
	// flag is the docker CLI flag, as the user typed it.
	flag string
	// why says, in parentheses, why or when it comes; hint, when set,
	// what to do meanwhile.
	why, hint string
	// asked reports whether the request uses the option.
	asked func(*mobycontainer.Config, *mobycontainer.HostConfig) bool
}

// Reasons shared by several options.
const (
	whySharing = "binds and named volumes work; this option arrives with later sharing work"
	whyNetwork = "each container has its own VM on a Berth network: the default one, one you create (docker network create), or none"
	whyVM      = "each container runs in its own VM with Berth's fixed device and security model"
)

// refused are the options create answers 400 for.
var refused = []unsupported{
	{"--volumes-from", whySharing, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.VolumesFrom) > 0 }},
	{"--volume-driver", "Berth's volumes use the local driver", "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool {
		return h.VolumeDriver != "" && h.VolumeDriver != "local"
	}},
	{"--tmpfs", whySharing, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.Tmpfs) > 0 }},
	{"--network host", whyNetwork, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return h.NetworkMode.IsHost() }},
	{"--network container:NAME", whyNetwork, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool {
		return h.NetworkMode.IsContainer()
	}},
	{"NetworkDisabled", whyNetwork, "use --network none", func(c *mobycontainer.Config, _ *mobycontainer.HostConfig) bool { return c.NetworkDisabled }},
	{"--link", whyNetwork, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.Links) > 0 }},
	{"--domainname", whyNetwork, "", func(c *mobycontainer.Config, _ *mobycontainer.HostConfig) bool { return c.Domainname != "" }},
	{"--pid", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool {
		return h.PidMode != "" && h.PidMode != "private"
	}},
	{"--ipc", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool {
		return h.IpcMode != "" && h.IpcMode != "private" && h.IpcMode != "shareable"
	}},
	{"--uts", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool {
		return h.UTSMode != "" && h.UTSMode != "private"
	}},
	{"--userns", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return h.UsernsMode != "" }},
	{"--cgroupns", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool {
		return h.CgroupnsMode != "" && h.CgroupnsMode != "private"
	}},
	{"--privileged", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return h.Privileged }},
	{"--cap-add", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.CapAdd) > 0 }},
	{"--cap-drop", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.CapDrop) > 0 }},
	{"--security-opt", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool {
		return len(h.SecurityOpt) > 0 || h.MaskedPaths != nil || h.ReadonlyPaths != nil
	}},
	{"--device", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.Devices) > 0 }},
	{"--device-cgroup-rule", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.DeviceCgroupRules) > 0 }},
	{"--gpus", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.DeviceRequests) > 0 }},
	{"--group-add", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.GroupAdd) > 0 }},
	{"--sysctl", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.Sysctls) > 0 }},
	{"--shm-size", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return h.ShmSize != 0 }},
	{"--storage-opt", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.StorageOpt) > 0 }},
	{"--runtime", "Berth's one runtime is berth-vm", "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool {
		return h.Runtime != "" && h.Runtime != "berth-vm"
	}},
	{"--isolation", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool {
		return h.Isolation != "" && h.Isolation != "default"
	}},
	{"--annotation", whyVM, "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool { return len(h.Annotations) > 0 }},
	{"--log-driver", "Berth logs in json-file format only", "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool {
		return h.LogConfig.Type != "" && h.LogConfig.Type != "json-file"
	}},
	{"--log-opt", "Berth's container log has a fixed size cap", "", func(_ *mobycontainer.Config, h *mobycontainer.HostConfig) bool {
		return len(h.LogConfig.Config) > 0
	}},
}

// ignored is a resource control the engine does not apply.
type ignored struct {
	flag  string
	asked func(*mobycontainer.HostConfig) bool
}

// warned are the resource controls a container's VM does not apply:
// Docker answers such a request with a warning when the host lacks the
// control, and so does Berth. --cpus and --memory size the VM.
var warned = []ignored{
	{"--cpu-shares", func(h *mobycontainer.HostConfig) bool { return h.CPUShares != 0 }},
	{"--cpu-period/--cpu-quota", func(h *mobycontainer.HostConfig) bool {
		return h.CPUPeriod != 0 || h.CPUQuota != 0
	}},
	{"--cpu-rt-period/--cpu-rt-runtime", func(h *mobycontainer.HostConfig) bool {
		return h.CPURealtimePeriod != 0 || h.CPURealtimeRuntime != 0
	}},
	{"--cpuset-cpus/--cpuset-mems", func(h *mobycontainer.HostConfig) bool {
		return h.CpusetCpus != "" || h.CpusetMems != ""
	}},
	{"--cgroup-parent", func(h *mobycontainer.HostConfig) bool {
		return h.CgroupParent != "" || h.Cgroup != ""
	}},
	{"--blkio-weight", func(h *mobycontainer.HostConfig) bool {
		return h.BlkioWeight != 0 || len(h.BlkioWeightDevice) > 0
	}},
	{"--device-read-bps/--device-write-bps/--device-read-iops/--device-write-iops", func(h *mobycontainer.HostConfig) bool {
		return len(h.BlkioDeviceReadBps)+len(h.BlkioDeviceWriteBps)+len(h.BlkioDeviceReadIOps)+len(h.BlkioDeviceWriteIOps) > 0
	}},
	{"--memory-reservation", func(h *mobycontainer.HostConfig) bool { return h.MemoryReservation != 0 }},
	{"--memory-swap", func(h *mobycontainer.HostConfig) bool {
		return h.MemorySwap != 0 && h.MemorySwap != h.Memory
	}},
	{"--memory-swappiness", func(h *mobycontainer.HostConfig) bool {
		return h.MemorySwappiness != nil && *h.MemorySwappiness != -1
	}},
	{"--oom-kill-disable", func(h *mobycontainer.HostConfig) bool {
		return h.OomKillDisable != nil && *h.OomKillDisable
	}},
	{"--oom-score-adj", func(h *mobycontainer.HostConfig) bool { return h.OomScoreAdj != 0 }},
	{"--pids-limit", func(h *mobycontainer.HostConfig) bool {
		return h.PidsLimit != nil && *h.PidsLimit > 0
	}},
	{"--cpu-count/--cpu-percent/--io-maxiops/--io-maxbandwidth", func(h *mobycontainer.HostConfig) bool {
		return h.CPUCount != 0 || h.CPUPercent != 0 || h.IOMaximumIOps != 0 || h.IOMaximumBandwidth != 0
	}},
	{"umask", func(h *mobycontainer.HostConfig) bool { return h.Umask != nil }},
}

// message says that u is not supported yet, why, and what to do.
func (u unsupported) message() string {
	msg := u.flag + " is not supported yet by Berth (" + u.why + ")"
	if u.hint != "" {
		msg += "; " + u.hint
	}
	return msg
}

// checkSupported refuses a create request that asks for something the
// engine does not implement yet and returns the warnings for what it
// ignores.
func checkSupported(req mobycontainer.CreateRequest) (warnings []string, err error) {
	cfg, hc := req.Config, req.HostConfig
	if hc == nil {
		hc = &mobycontainer.HostConfig{}
	}
	if wd := cfg.WorkingDir; wd != "" && !path.IsAbs(wd) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("the working directory '%s' is invalid, it needs to be an absolute path", wd))
	}
	var msgs []string
	for _, u := range refused {
		if u.asked(cfg, hc) {
			msgs = append(msgs, u.message())
		}
	}
	if msg := checkEndpoints(string(hc.NetworkMode), req.NetworkingConfig); msg != "" {
		msgs = append(msgs, msg)
	}
	if len(msgs) > 0 {
		return nil, errdefs.InvalidArgument(errors.New(strings.Join(msgs, "; ")))
	}
	warnings = []string{}
	for _, u := range warned {
		if u.asked(hc) {
			warnings = append(warnings, u.flag+" is not supported by Berth: each container runs in its own VM, sized by --cpus and --memory. The setting is discarded.")
		}
	}
	return warnings, nil
}

// checkEndpoints refuses endpoint settings other than aliases (--ip,
// --mac-address, ...) and a second network: a container's VM has one
// NIC, on the network its mode names.
func checkEndpoints(mode string, nc *network.NetworkingConfig) string {
	if nc == nil {
		return ""
	}
	if len(nc.EndpointsConfig) > 1 {
		return "connecting a container to more than one network is not supported yet by Berth (" + whyNetwork + ")"
	}
	for name, ep := range nc.EndpointsConfig {
		if name != mode && !(bnet.IsDefault(name) && bnet.IsDefault(mode)) {
			return fmt.Sprintf("the endpoint settings are for network %s but the container's network is %s", name, mode)
		}
		if ep == nil {
			continue
		}
		ipam := ep.IPAMConfig != nil && (ep.IPAMConfig.IPv6Address.IsValid() || len(ep.IPAMConfig.LinkLocalIPs) > 0)
		if len(ep.Links) > 0 || ipam || len(ep.MacAddress) > 0 || len(ep.DriverOpts) > 0 {
			return "--ip6, --link-local-ip, --mac-address, --driver-opt and links are not supported yet by Berth (" + whyNetwork + ")"
		}
	}
	return ""
}

// requestedIP is the address a create request asks for on the
// container's network (--ip); zero when none.
func requestedIP(nc *network.NetworkingConfig) netip.Addr {
	if nc == nil {
		return netip.Addr{}
	}
	for _, ep := range nc.EndpointsConfig {
		if ep != nil && ep.IPAMConfig != nil {
			return ep.IPAMConfig.IPv4Address
		}
	}
	return netip.Addr{}
}

// aliases are the network aliases a create request gives the container
// on its network (--network-alias; compose's service name).
func aliases(nc *network.NetworkingConfig) []string {
	if nc == nil {
		return nil
	}
	var out []string
	for _, ep := range nc.EndpointsConfig {
		if ep != nil {
			out = append(out, ep.Aliases...)
		}
	}
	return out
}
