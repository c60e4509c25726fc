// Package container is Berth's container lifecycle: create, start, wait,
// stop, kill, exec, attach, logs, remove, list and inspect, each container
// in its own micro-VM.
//
// A container's state lives under its directory,
// $BERTH_HOME/containers/<id>/:
//
//	config.json   what it was created with (written once, atomically)
//	state.json    where it stands (rewritten atomically on every change)
//	rootfs.ext4   its copy-on-write clone of the image's base rootfs
//	container.log its output, Docker's json-file format, size-capped
//	console.log   the VM's console
//
// After an engine crash the Manager finds containers recorded as running,
// stops what is left of their VMs and marks them exited with the reason;
// nothing else is lost.
package container

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/berthvm/berth/engine/network"
	"github.com/berthvm/berth/engine/share"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// Spec is what a container was created with. It never changes after
// create, except for the name (rename) and the run-time shares.
type Spec struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Image is the reference the user gave; ImageID the image's ID
	// (sha256:<config digest>) and ImageManifest its manifest digest, the
	// key of the base rootfs it was cloned from.
	Image         string `json:"image"`
	ImageID       string `json:"imageId"`
	ImageManifest string `json:"imageManifest"`
	// Config and HostConfig are Docker's, as the client sent them (labels
	// returned exactly), with the image's defaults applied.
	Config     *mobycontainer.Config     `json:"config"`
	HostConfig *mobycontainer.HostConfig `json:"hostConfig"`
	// Path and Args are the main process's command line (entrypoint + cmd).
	Path string   `json:"path"`
	Args []string `json:"args"`
	// Mounts are the container's binds and volumes, resolved at create
	// (engine/share), in the order the VM gets them.
	Mounts []share.Mount `json:"mounts,omitempty"`
	// RunShares are the folders shared at run time (berth share add), in
	// the order added; share add and rm change them, and every start
	// mounts them.
	RunShares []RunShare `json:"runShares,omitempty"`
	// Aliases are the container's names on its network besides its own
	// (--network-alias, or docker network connect --alias).
	Aliases []string `json:"aliases,omitempty"`
	// Network is the network the container joins at its next start when
	// docker network connect or disconnect changed it from its network
	// mode (HostConfig.NetworkMode keeps what create asked, as in
	// Docker): a network's name ("default" for the default network), or
	// "none" once it was disconnected from its network. "": its network
	// mode's.
	Network string `json:"network,omitempty"`
	// IP is the address the container asked for on its network (--ip,
	// or docker network connect --ip); zero: one from the network's
	// pool.
	IP netip.Addr `json:"ip,omitzero"`
}

// NetworkName is the network the container is on (or joins at its next
// start): "default" (or "" or "bridge") for the default network,
// "none", or a network's name.
func (s Spec) NetworkName() string {
	if s.Network != "" {
		return s.Network
	}
	if s.HostConfig == nil {
		return ""
	}
	return string(s.HostConfig.NetworkMode)
}

// State is where a container stands.
type State struct {
	Status mobycontainer.ContainerState `json:"status"`
	// Pid is the VMM process's pid while running (QEMU on Linux; the
	// engine's own on macOS, where VMs run in-process).
	Pid       int       `json:"pid,omitempty"`
	ExitCode  int       `json:"exitCode"`
	Error     string    `json:"error,omitempty"`
	OOMKilled bool      `json:"oomKilled,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	// FinishedAt is when the main process exited (zero while running).
	FinishedAt time.Time `json:"finishedAt"`
	// IPAddress is the guest's address as its agent reported it.
	IPAddress string `json:"ipAddress,omitempty"`
	// IPPrefixLen and Gateway are the address's network's, where the
	// backend planned it (a Berth network); zero otherwise.
	IPPrefixLen int        `json:"ipPrefixLen,omitempty"`
	Gateway     netip.Addr `json:"gateway,omitzero"`
	// Ports are the ports the run publishes, as bound (while running).
	Ports []network.PortSpec `json:"ports,omitempty"`
	// Boot is the last start's boot timeline.
	Boot *BootTimeline `json:"boot,omitempty"`
	// Health is the health check's state while the container has one
	// (health.go); replaced, never changed in place.
	Health *mobycontainer.Health `json:"health,omitempty"`
	// RestartCount counts the restarts by policy since the last start a
	// user asked for.
	RestartCount int `json:"restartCount,omitempty"`
	// ManuallyStopped says a user stopped or killed the last run (an
	// unless-stopped container then stays down when the engine starts).
	ManuallyStopped bool `json:"manuallyStopped,omitempty"`
	// Starting says a start was under way when the state was saved: an
	// engine that finds it set when it opens died during that start.
	Starting bool `json:"starting,omitempty"`
}

// BootTimeline is the last start's phases, host-side, from VM process
// start; guest times are from guestinit (CLOCK_BOOTTIME since kernel start).
type BootTimeline struct {
	// Host side, offsets from the start request.
	VMStarted  time.Duration `json:"vmStarted"`
	AgentReady time.Duration `json:"agentReady"`
	ProcessUp  time.Duration `json:"processUp"`
	// Guest side, since the guest kernel started.
	GuestInitStart     time.Duration `json:"guestInitStart"`
	GuestModulesLoaded time.Duration `json:"guestModulesLoaded"`
	GuestRootfsMounted time.Duration `json:"guestRootfsMounted"`
	GuestAgentServing  time.Duration `json:"guestAgentServing"`
	// Backend names the VM backend ("qemu (kvm)", "qemu (tcg)", "vz").
	Backend string `json:"backend,omitempty"`
}

// Snapshot is a consistent copy of a container's spec and state.
type Snapshot struct {
	Spec  Spec
	State State
	Dir   string
	// ExecIDs are the exec sessions that exist now.
	ExecIDs []string
}

// ShortID is the 12-digit prefix Docker shows.
func (s Snapshot) ShortID() string { return s.Spec.ID[:12] }

// Command is the main process's command line as `docker ps` shows it.
func (s Snapshot) Command() string {
	return strings.TrimSpace(s.Spec.Path + " " + strings.Join(s.Spec.Args, " "))
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
