package container

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/network"
	"github.com/berthvm/berth/internal/atomicfile"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// errOneNetwork says why a container cannot be on a second network.
const errOneNetwork = "a Berth container is on one network (its VM has one NIC)"

// Endpoint is a container's settings on the network it connects to:
// its aliases and the address it asks for (zero: one from the pool).
type Endpoint struct {
	Aliases []string
	IP      netip.Addr
}

// Connect puts container ref on network netRef (docker network connect)
// with ep's aliases and address, from its next start. Berth's containers are on one
// network each, so the container must have none: created with a
// network and then disconnected from it. A running container's NIC is
// fixed while its VM runs: it is refused (errdefs.ErrConflict) with what
// to do. It returns the network's name.
func (m *Manager) Connect(ref, netRef string, ep Endpoint) (string, error) {
	if m.networks == nil {
		return "", errdefs.NotImplemented(errors.New("docker network connect needs Berth's networks, which this engine has not got (not on this backend yet)"))
	}
	name, err := m.networks.Resolve(netRef)
	if err != nil {
		return "", err
	}
	for _, a := range ep.Aliases {
		if !ValidName(a) {
			return "", errdefs.InvalidArgument(fmt.Errorf("invalid network alias %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", a))
		}
	}
	c, err := m.Get(ref)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stoppedLocked("connect", name); err != nil {
		return "", err
	}
	switch cur := c.spec.NetworkName(); {
	case sameNetwork(cur, name):
		return "", errdefs.PermissionDenied(fmt.Errorf("endpoint with name %s already exists in network %s", c.spec.Name, name))
	case cur == network.None && c.spec.Network == "":
		return "", errdefs.InvalidArgument(errors.New("container cannot be connected to multiple networks with one of the networks in private (none) mode"))
	case cur != network.None:
		return "", errdefs.NotImplemented(fmt.Errorf("docker network connect %s %s: %s and this one is on %s: disconnect it from %s first (docker network disconnect %s %s)",
			name, c.spec.Name, errOneNetwork, displayNetwork(cur), displayNetwork(cur), displayNetwork(cur), c.spec.Name))
	}
	mode := name
	if network.IsDefault(name) {
		mode = "default"
	}
	if ep.IP.IsValid() && (mode == "default" || !ep.IP.Is4()) {
		return "", errdefs.InvalidArgument(fmt.Errorf("--ip %s: user specified IP address is supported on user defined networks only, and Berth's are IPv4", ep.IP))
	}
	return name, c.setNetworkLocked(mode, slices.Clone(ep.Aliases), ep.IP)
}

// Disconnect takes stopped or created container ref off network netRef
// (docker network disconnect): it starts with no NIC (loopback only)
// until connected again. A running container is refused
// (errdefs.ErrConflict) with what to do. It returns the network's
// name.
func (m *Manager) Disconnect(ref, netRef string) (string, error) {
	if m.networks == nil {
		return "", errdefs.NotImplemented(errors.New("docker network disconnect needs Berth's networks, which this engine has not got (not on this backend yet)"))
	}
	name, err := m.networks.Resolve(netRef)
	if err != nil {
		return "", err
	}
	c, err := m.Get(ref)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !sameNetwork(c.spec.NetworkName(), name) {
		return "", errdefs.InvalidArgument(fmt.Errorf("container %s is not connected to network %s", c.spec.ID[:12], name))
	}
	if err := c.stoppedLocked("disconnect", name); err != nil {
		return "", err
	}
	return name, c.setNetworkLocked(network.None, nil, netip.Addr{})
}

// stoppedLocked refuses a connect or disconnect (verb) of c to network
// name while c runs or starts (errdefs.ErrConflict, 409: the container's
// state is in the way, and stopping it is what to do).
func (c *Container) stoppedLocked(verb, name string) error {
	switch c.state.Status {
	case mobycontainer.StateRunning, mobycontainer.StateRestarting, mobycontainer.StatePaused:
	default:
		if c.run == nil && c.busy == "" {
			return nil
		}
	}
	return errdefs.Conflict(fmt.Errorf("docker network %s %s %s: the container is running, and its VM's NIC cannot change while it runs (Berth adds no NIC to a running VM): stop it, %s it, and start it again",
		verb, name, c.spec.Name, verb))
}

// setNetworkLocked records the network c joins at its next start.
func (c *Container) setNetworkLocked(mode string, aliases []string, ip netip.Addr) error {
	oldNet, oldAliases, oldIP := c.spec.Network, c.spec.Aliases, c.spec.IP
	c.spec.Network, c.spec.Aliases, c.spec.IP = mode, aliases, ip
	if err := atomicfile.WriteJSON(filepath.Join(c.dir, "config.json"), c.spec); err != nil {
		c.spec.Network, c.spec.Aliases, c.spec.IP = oldNet, oldAliases, oldIP
		return fmt.Errorf("record the network of container %s: %w", c.spec.ID[:12], err)
	}
	return nil
}

// sameNetwork reports whether network modes a and b name one network.
func sameNetwork(a, b string) bool {
	return a == b || (network.IsDefault(a) && network.IsDefault(b))
}

// displayNetwork is a network mode as Docker names it ("bridge" for the
// default network).
func displayNetwork(mode string) string {
	if network.IsDefault(mode) {
		return network.DefaultName
	}
	return mode
}
