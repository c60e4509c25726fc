//go:build !linux

package engine

import (
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/network"
)

// openNetworks: Berth's own networks are Linux's for now; on macOS each
// VM keeps vz's NAT (whatever mode is asked for).
func openNetworks(home.Home, options) (*network.Manager, error) { return nil, nil }
