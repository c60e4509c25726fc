package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/atomicfile"
)

// IPAM hands out the addresses of one network: the gateway is the
// subnet's first host address, each container gets the lowest free one
// after it and keeps it until Release. Every change is written to its
// file (temp file, fsync, rename) before the call returns, so addresses
// survive an engine restart and a crash leaves the old or the new table,
// never a torn one. It is safe for concurrent use.
type IPAM struct {
	path    string
	subnet  netip.Prefix
	gateway netip.Addr
	// reserved are addresses no container gets (the gateway, the host's
	// virtual address).
	reserved map[netip.Addr]bool

	mu     sync.Mutex
	leases map[string]netip.Addr // container ID → address
}

// ipamFile is the IPAM's file.
type ipamFile struct {
	Subnet netip.Prefix          `json:"subnet"`
	Leases map[string]netip.Addr `json:"leases"`
}

// OpenIPAM opens the address table of subnet kept at path (created on
// the first lease). reserved are addresses beyond the gateway that no
// container gets. A table written for another subnet is an error: its
// leases would not be addresses of this one.
func OpenIPAM(path string, subnet netip.Prefix, reserved ...netip.Addr) (*IPAM, error) {
	subnet = subnet.Masked()
	if !subnet.Addr().Is4() || subnet.Bits() > 30 {
		return nil, errdefs.InvalidArgument(fmt.Errorf("open address table %s: subnet %s is not an IPv4 subnet with room for a gateway and a container", path, subnet))
	}
	a := &IPAM{path: path, subnet: subnet, gateway: subnet.Addr().Next(), reserved: map[netip.Addr]bool{}, leases: map[string]netip.Addr{}}
	a.reserved[a.gateway] = true
	for _, r := range reserved {
		a.reserved[r] = true
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open address table: %w", err)
	}
	var f ipamFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("open address table %s: %w", path, err)
	}
	if f.Subnet != subnet {
		return nil, fmt.Errorf("open address table %s: it is for subnet %s, not %s (remove the file to start afresh)", path, f.Subnet, subnet)
	}
	for id, ip := range f.Leases {
		if !subnet.Contains(ip) {
			return nil, fmt.Errorf("open address table %s: lease %s of %s is outside %s", path, ip, id, subnet)
		}
		a.leases[id] = ip
	}
	return a, nil
}

// Subnet is the network's subnet.
func (a *IPAM) Subnet() netip.Prefix { return a.subnet }

// Gateway is the network's gateway: the subnet's first host address.
func (a *IPAM) Gateway() netip.Addr { return a.gateway }

// Lease returns id's address, taking the lowest free one when id has
// none yet.
func (a *IPAM) Lease(id string) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.leases[id]; ok {
		return ip, nil
	}
	used := map[netip.Addr]bool{}
	for _, ip := range a.leases {
		used[ip] = true
	}
	for ip := a.gateway.Next(); a.subnet.Contains(ip) && !isBroadcast(ip, a.subnet); ip = ip.Next() {
		if used[ip] || a.reserved[ip] {
			continue
		}
		a.leases[id] = ip
		if err := a.saveLocked(); err != nil {
			delete(a.leases, id)
			return netip.Addr{}, err
		}
		return ip, nil
	}
	return netip.Addr{}, errdefs.Unavailable(fmt.Errorf("lease an address for %s: every address of %s is in use (remove containers you no longer need)", id, a.subnet))
}

// LeaseAddr gives id the address ip (docker run --ip): id's lease
// becomes ip. An address outside the subnet, the gateway, a reserved
// one or the broadcast address is errdefs.ErrInvalidArgument; one
// another container holds is errdefs.ErrConflict naming it.
func (a *IPAM) LeaseAddr(id string, ip netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case !a.subnet.Contains(ip) || ip == a.subnet.Addr() || isBroadcast(ip, a.subnet):
		return errdefs.InvalidArgument(fmt.Errorf("address %s: it is not a host address of the network's subnet %s", ip, a.subnet))
	case ip == a.gateway:
		return errdefs.InvalidArgument(fmt.Errorf("address %s: it is the network's gateway", ip))
	case a.reserved[ip]:
		return errdefs.InvalidArgument(fmt.Errorf("address %s: it is the network's host alias (host.berth.internal)", ip))
	}
	for other, o := range a.leases {
		if o == ip && other != id {
			return errdefs.Conflict(fmt.Errorf("Address already in use: %s is container %s's", ip, shortID(other)))
		}
	}
	old, had := a.leases[id]
	if had && old == ip {
		return nil
	}
	a.leases[id] = ip
	if err := a.saveLocked(); err != nil {
		if had {
			a.leases[id] = old
		} else {
			delete(a.leases, id)
		}
		return err
	}
	return nil
}

// shortID is the 12-character form of a container ID.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Release frees id's address; an id without one is not an error.
func (a *IPAM) Release(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ip, ok := a.leases[id]
	if !ok {
		return nil
	}
	delete(a.leases, id)
	if err := a.saveLocked(); err != nil {
		a.leases[id] = ip
		return err
	}
	return nil
}

// Keep releases every lease whose holder keep rejects: the leases of
// containers an engine removed without releasing (it died in between).
func (a *IPAM) Keep(keep func(id string) bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var gone []string
	for id := range a.leases {
		if !keep(id) {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	old := make(map[string]netip.Addr, len(gone))
	for _, id := range gone {
		old[id] = a.leases[id]
		delete(a.leases, id)
	}
	if err := a.saveLocked(); err != nil {
		for id, ip := range old {
			a.leases[id] = ip
		}
		return err
	}
	return nil
}

// Leases returns a copy of the table: container ID → address.
func (a *IPAM) Leases() map[string]netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]netip.Addr, len(a.leases))
	for id, ip := range a.leases {
		out[id] = ip
	}
	return out
}

func (a *IPAM) saveLocked() error {
	if err := atomicfile.WriteJSON(a.path, ipamFile{Subnet: a.subnet, Leases: a.leases}); err != nil {
		return fmt.Errorf("save address table %s: %w", a.path, err)
	}
	return nil
}

// isBroadcast reports whether ip is p's last address.
func isBroadcast(ip netip.Addr, p netip.Prefix) bool {
	b := ip.As4()
	host := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	mask := ^uint32(0) >> p.Bits()
	return host&mask == mask
}
