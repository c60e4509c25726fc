package engine

import (
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/network"
)

// openNetworks opens the user-mode networks (h/networks): on Linux every
// container's VM joins the default network's user-space switch.
func openNetworks(h home.Home, o options) (*network.Manager, error) {
	return network.New(network.Config{Dir: h.Path("networks"), HostLoopback: o.hostLoopback, Log: o.log.With("part", "network")})
}
