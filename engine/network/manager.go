package network

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/internal/atomicfile"
)

// DefaultSubnet is the default network's subnet. The network lives in
// user space, so it needs no route on the host and clashes with nothing
// there; what it hides from containers is the host's own networks of the
// same range (a container cannot reach a LAN host whose address is in
// it). 192.168.127.0/24 is outside Docker's pools (172.17.0.0/16 and up),
// Podman's bridge (10.88.0.0/16), the ranges home routers hand out
// (192.168.0.x, 192.168.1.x, 192.168.178.x) and the 10/8 most company
// networks and VPNs use; it is also gvisor-tap-vsock's own default, so
// advice written for Podman machine applies.
var DefaultSubnet = netip.MustParsePrefix("192.168.127.0/24")

// userPool is where a network created without a subnet gets one: the
// first /24 from 192.168.128.0 up to 192.168.254.0 that overlaps no
// other network's (the ranges DefaultSubnet's reasons apply to).
var userPool = netip.MustParsePrefix("192.168.128.0/17")

// DefaultName is the default network's name: Docker's, so that
// `--network bridge` and tools that look for "bridge" find it. "default"
// names it too.
const DefaultName = "bridge"

// None is the network mode of a container without a network: its VM
// has no NIC, only loopback.
const None = "none"

// IsDefault reports whether a container's network mode names the
// default network: empty (Docker's clients send "default" or nothing),
// "default" or its name.
func IsDefault(mode string) bool { return mode == "" || mode == "default" || mode == DefaultName }

// defaultFile is the default network's address table, under Config.Dir.
const defaultFile = "default.json"

// indexFile lists the user-defined networks, under Config.Dir.
const indexFile = "networks.json"

// validName is what a network name may be (Docker's rule).
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// The networking modes (Config.Mode, Manager.Mode).
const (
	// ModeUser: each network is a user-space switch in the engine
	// (gvisor-tap-vsock); no privileges needed.
	ModeUser = "user"
	// ModeBridge: each network is a Linux bridge with a TAP device per
	// VM, outbound NAT by nftables (Linux; root or CAP_NET_ADMIN).
	ModeBridge = "bridge"
)

// Config configures a Manager.
type Config struct {
	// Mode is ModeUser ("" too) or ModeBridge.
	Mode string
	// ModeReason says why Mode was chosen ("asked for with
	// --network-mode"), for ModeReason; "": nothing is said.
	ModeReason string
	// Dir holds the networks' state: networks.json (the user-defined
	// networks) and each network's address table (default.json for the
	// default network, ID.json for the others).
	Dir string
	// Subnet is the default network's; zero: DefaultSubnet.
	Subnet netip.Prefix
	// HostLoopback lets containers reach the host's loopback services
	// (127.0.0.1) at each network's last host address (its host alias,
	// which host.berth.internal names). Off by default: a container
	// reaches what the host reaches on its networks, not the services
	// the host keeps to itself.
	HostLoopback bool
	// Resolvers are the host's DNS servers (host:port) that names outside
	// Berth's are forwarded to; nil: the nameservers of /etc/resolv.conf.
	Resolvers []string
	// Log receives what goes wrong with a published port's connection or
	// a forwarded query.
	Log *slog.Logger
}

// Info describes one network.
type Info struct {
	// ID is 64 hex digits, as Docker's.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Subnet is the network's; its first host address is the gateway
	// (and DNS server), its last one the host alias.
	Subnet  netip.Prefix      `json:"subnet"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	// Internal networks have no outbound access (--internal): their
	// containers reach each other and their resolver, which answers
	// their names only, not the host's networks or the host.
	Internal bool `json:"internal,omitempty"`
	// Default marks the default network (it cannot be removed).
	Default bool `json:"-"`
	// Endpoints are the containers running on the network, by ID.
	Endpoints map[string]Endpoint `json:"-"`
}

// Gateway is the network's gateway: its first host address.
func (i Info) Gateway() netip.Addr { return i.Subnet.Masked().Addr().Next() }

// HostAlias is the network's last host address: host.berth.internal.
func (i Info) HostAlias() netip.Addr { return lastHost(i.Subnet.Masked()) }

// CreateOptions are a new network's settings.
type CreateOptions struct {
	Name string
	// Subnet is the network's; zero: the first free /24 of
	// 192.168.128.0/17.
	Subnet netip.Prefix
	Labels map[string]string
	// Internal: no outbound access (Info.Internal).
	Internal bool
}

// Manager owns Berth's user-mode ("user", rootless) networking: the
// networks (the default one and those users create), each with its
// address plan, its addresses (IPAM, kept under Config.Dir), its names
// (a DNS server on its gateway) and its own user-space switch, which
// the VMs of its containers join and which carries the ports they
// publish. Networks share nothing: no frame or connection passes from
// one switch to another, so containers on different networks cannot
// reach each other. A switch starts with its network's first Attach. It
// is safe for concurrent use.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	resolvers []string
	// bridges is bridge mode's host side; nil in user mode.
	bridges *bridgeHost

	mu     sync.Mutex
	nets   map[string]*netw // by ID
	closed bool
	// subnets are every network's, for the forwarders' check without mu
	// (replaced whole on create and remove).
	subnets atomic.Pointer[[]netip.Prefix]
}

// netw is one network: its description, addresses, names and switch.
type netw struct {
	info  Info
	ipam  *IPAM
	names *names
	res   *resolver // nil until the first Attach
	fab   fabric    // nil until the first Attach
}

// indexJSON is networks.json.
type indexJSON struct {
	// DefaultCreated is when the default network was first opened.
	DefaultCreated time.Time `json:"defaultCreated"`
	Networks       []Info    `json:"networks"`
}

// New opens the networks' state under cfg.Dir.
func New(cfg Config) (*Manager, error) {
	if cfg.Subnet == (netip.Prefix{}) {
		cfg.Subnet = DefaultSubnet
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Manager{cfg: cfg, log: cfg.Log, resolvers: cfg.Resolvers, nets: map[string]*netw{}}
	if m.resolvers == nil {
		m.resolvers = hostResolvers("/etc/resolv.conf")
	}
	var idx indexJSON
	switch b, err := os.ReadFile(filepath.Join(cfg.Dir, indexFile)); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("open networks: %w", err)
	default:
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("open networks %s: %w", filepath.Join(cfg.Dir, indexFile), err)
		}
	}
	sum := sha256.Sum256([]byte("berth default network"))
	def := Info{ID: hex.EncodeToString(sum[:]), Name: DefaultName, Subnet: cfg.Subnet.Masked(), Created: idx.DefaultCreated, Default: true}
	if err := m.open(def, defaultFile); err != nil {
		return nil, err
	}
	for _, info := range idx.Networks {
		if err := m.open(info, info.ID+".json"); err != nil {
			return nil, err
		}
	}
	if def.Created.IsZero() {
		m.nets[def.ID].info.Created = time.Now().UTC()
		if err := m.saveLocked(); err != nil {
			return nil, err
		}
	}
	switch cfg.Mode {
	case "", ModeUser:
	case ModeBridge:
		if cfg.HostLoopback {
			return nil, errdefs.InvalidArgument(errors.New("bridge mode cannot open the host's loopback to containers (--host-loopback): they reach the host at their network's gateway; use user mode for the opt-in"))
		}
		keep := make([]Info, 0, len(m.nets))
		for _, n := range m.nets {
			keep = append(keep, n.info)
		}
		var err error
		if m.bridges, err = newBridgeHost(m.log, keep); err != nil {
			return nil, err
		}
	default:
		return nil, errdefs.InvalidArgument(fmt.Errorf("networking mode %q: it is %s or %s", cfg.Mode, ModeUser, ModeBridge))
	}
	return m, nil
}

// open adds a network whose address table is file under Config.Dir.
func (m *Manager) open(info Info, file string) error {
	ipam, err := OpenIPAM(filepath.Join(m.cfg.Dir, file), info.Subnet, info.HostAlias())
	if err != nil {
		return err
	}
	m.nets[info.ID] = &netw{info: info, ipam: ipam, names: newNames()}
	m.updateSubnetsLocked()
	return nil
}

// updateSubnetsLocked publishes the networks' subnets for inBerth.
func (m *Manager) updateSubnetsLocked() {
	ps := make([]netip.Prefix, 0, len(m.nets))
	for _, n := range m.nets {
		ps = append(ps, n.info.Subnet)
	}
	m.subnets.Store(&ps)
}

// inBerth reports whether a is an address of one of Berth's networks.
func (m *Manager) inBerth(a netip.Addr) bool {
	if ps := m.subnets.Load(); ps != nil {
		for _, p := range *ps {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

// Mode names the networking mode: ModeUser (a user-space network, no
// privileges needed) or ModeBridge (Linux bridges).
func (m *Manager) Mode() string {
	if m.bridges != nil {
		return ModeBridge
	}
	return ModeUser
}

// ModeReason says what Mode is and why it is the one in use.
func (m *Manager) ModeReason() string {
	what := "rootless: each network is a user-space switch in the engine (gvisor-tap-vsock), needing no privileges; containers reach the host's network through the engine's sockets"
	if m.bridges != nil {
		what = "each network is a Linux bridge (berth0 for the default one) with a TAP device per VM; the host reaches every container at its own address; outbound through nftables NAT (table ip berth)"
	}
	if m.cfg.ModeReason != "" {
		return what + " (" + m.cfg.ModeReason + ")"
	}
	return what
}

// HostLoopback reports whether containers reach the host's loopback at
// host.berth.internal.
func (m *Manager) HostLoopback() bool { return m.cfg.HostLoopback }

// HostAlias is the address at which containers on the default network
// reach the host's loopback when Config.HostLoopback is on.
func (m *Manager) HostAlias() netip.Addr { return lastHost(m.cfg.Subnet.Masked()) }

// IPAM is the default network's address table.
func (m *Manager) IPAM() *IPAM {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.defaultLocked().ipam
}

func (m *Manager) defaultLocked() *netw {
	for _, n := range m.nets {
		if n.info.Default {
			return n
		}
	}
	panic("network: no default network")
}

// Keep releases the addresses of containers keep rejects (ones an engine
// removed without releasing), on every network.
func (m *Manager) Keep(keep func(id string) bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, n := range m.nets {
		errs = append(errs, n.ipam.Keep(keep))
	}
	return errors.Join(errs...)
}

// Release frees container id's addresses (at its removal).
func (m *Manager) Release(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, n := range m.nets {
		errs = append(errs, n.ipam.Release(id))
	}
	return errors.Join(errs...)
}

// Rename gives running container id its new name in DNS at once.
func (m *Manager) Rename(id, name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nets {
		n.names.rename(id, name)
	}
}

// findLocked returns the network ref names: a name ("default" is the
// default network), an ID or a unique ID prefix.
func (m *Manager) findLocked(ref string) (*netw, error) {
	if ref == "" || ref == "default" {
		return m.defaultLocked(), nil
	}
	for _, n := range m.nets {
		if n.info.Name == ref || n.info.ID == ref {
			return n, nil
		}
	}
	var found []*netw
	for _, n := range m.nets {
		if strings.HasPrefix(n.info.ID, ref) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, errdefs.NotFound(fmt.Errorf("network %s not found", ref))
	}
	return nil, errdefs.InvalidArgument(fmt.Errorf("network %s is ambiguous (%d matches found on ID prefix)", ref, len(found)))
}

// infoLocked is n's description with its running containers.
func (n *netw) infoLocked() Info {
	i := n.info
	i.Labels = maps.Clone(i.Labels)
	i.Endpoints = n.names.list()
	return i
}

// Get describes the network ref names (a name, an ID or an ID prefix);
// errdefs.ErrNotFound with Docker's text when there is none.
func (m *Manager) Get(ref string) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.findLocked(ref)
	if err != nil {
		return Info{}, err
	}
	return n.infoLocked(), nil
}

// List describes every network, the default one first, then by name.
func (m *Manager) List() []Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Info, 0, len(m.nets))
	for _, n := range m.nets {
		out = append(out, n.infoLocked())
	}
	slices.SortFunc(out, func(a, b Info) int {
		if a.Default != b.Default {
			if a.Default {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Create makes a network. A name taken is errdefs.ErrConflict; a subnet
// that overlaps another network's is errdefs.ErrInvalidArgument naming
// that network.
func (m *Manager) Create(opts CreateOptions) (Info, error) {
	name := opts.Name
	switch {
	case name == "":
		return Info{}, errdefs.InvalidArgument(errors.New("create network: a network needs a name"))
	case !validName.MatchString(name):
		return Info{}, errdefs.InvalidArgument(fmt.Errorf("create network: invalid name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name))
	case name == "default" || name == None || name == "host":
		return Info{}, errdefs.PermissionDenied(fmt.Errorf("create network: %s is a pre-defined network and cannot be created", name))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Info{}, errdefs.Unavailable(errors.New("create network: the engine's networks are closed"))
	}
	for _, n := range m.nets {
		if n.info.Name == name {
			return Info{}, errdefs.Conflict(fmt.Errorf("network with name %s already exists", name))
		}
	}
	subnet := opts.Subnet.Masked()
	if opts.Subnet.IsValid() {
		if !subnet.Addr().Is4() || subnet.Bits() < 8 || subnet.Bits() > 29 {
			// /29 at most: a gateway, a host alias and room for containers.
			return Info{}, errdefs.InvalidArgument(fmt.Errorf("create network %s: subnet %s: Berth's networks are IPv4 subnets from /8 to /29", name, opts.Subnet))
		}
		if subnet != opts.Subnet {
			return Info{}, errdefs.InvalidArgument(fmt.Errorf("create network %s: invalid subnet %s: it is not a network address (did you mean %s?)", name, opts.Subnet, subnet))
		}
		for _, n := range m.nets {
			if n.info.Subnet.Overlaps(subnet) {
				return Info{}, errdefs.InvalidArgument(fmt.Errorf("create network %s: invalid pool request: Pool overlaps with other one on this address space (subnet %s overlaps network %s's %s)", name, subnet, n.info.Name, n.info.Subnet))
			}
		}
	} else {
		var ok bool
		if subnet, ok = m.freeSubnetLocked(); !ok {
			return Info{}, errdefs.Unavailable(fmt.Errorf("create network %s: every /24 of %s is in use: remove networks you no longer need, or give one with --subnet", name, userPool))
		}
	}
	var id [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Info{}, fmt.Errorf("create network %s: %w", name, err)
	}
	info := Info{ID: hex.EncodeToString(id[:]), Name: name, Subnet: subnet, Labels: maps.Clone(opts.Labels), Created: time.Now().UTC(), Internal: opts.Internal}
	if err := m.open(info, info.ID+".json"); err != nil {
		return Info{}, err
	}
	if err := m.saveLocked(); err != nil {
		delete(m.nets, info.ID)
		m.updateSubnetsLocked()
		return Info{}, err
	}
	return m.nets[info.ID].infoLocked(), nil
}

// freeSubnetLocked is the first /24 of userPool no network overlaps.
func (m *Manager) freeSubnetLocked() (netip.Prefix, bool) {
	for p := netip.PrefixFrom(userPool.Addr(), 24); userPool.Contains(p.Addr()); p = netip.PrefixFrom(nextPrefix(p), 24) {
		if isBroadcast(lastHost(p).Next(), userPool) {
			break // 192.168.255.0/24: its last address is the pool's broadcast
		}
		free := true
		for _, n := range m.nets {
			free = free && !n.info.Subnet.Overlaps(p)
		}
		if free {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// nextPrefix is the address after p's last.
func nextPrefix(p netip.Prefix) netip.Addr { return lastHost(p).Next().Next() }

// Remove deletes the network ref names. The default network cannot be
// removed (errdefs.ErrPermissionDenied), nor one a container runs on
// (errdefs.ErrConflict with Docker's text).
func (m *Manager) Remove(ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.findLocked(ref)
	if err != nil {
		return err
	}
	return m.removeLocked(n)
}

func (m *Manager) removeLocked(n *netw) error {
	if n.info.Default {
		return errdefs.PermissionDenied(fmt.Errorf("%s is a pre-defined network and cannot be removed", n.info.Name))
	}
	if eps := n.names.list(); len(eps) > 0 {
		var who []string
		for id, ep := range eps {
			who = append(who, fmt.Sprintf("name:%q id:%q", ep.Name, id[:12]))
		}
		slices.Sort(who)
		return errdefs.Conflict(fmt.Errorf("error while removing network: network %s id %s has active endpoints (%s)", n.info.Name, n.info.ID, strings.Join(who, ", ")))
	}
	delete(m.nets, n.info.ID)
	if err := m.saveLocked(); err != nil {
		m.nets[n.info.ID] = n
		return err
	}
	m.updateSubnetsLocked()
	if n.fab != nil {
		n.fab.close()
		n.fab = nil
	}
	if err := os.Remove(filepath.Join(m.cfg.Dir, n.info.ID+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("remove network: address table", "network", n.info.Name, "err", err)
	}
	return nil
}

// Prune removes the user-defined networks that no container runs on
// and that match accepts, and returns their names.
func (m *Manager) Prune(match func(Info) bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var removed []string
	var errs []error
	for _, n := range m.nets {
		info := n.infoLocked()
		if info.Default || len(info.Endpoints) > 0 || !match(info) {
			continue
		}
		if err := m.removeLocked(n); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, info.Name)
	}
	slices.Sort(removed)
	return removed, errors.Join(errs...)
}

// saveLocked writes networks.json.
func (m *Manager) saveLocked() error {
	var idx indexJSON
	for _, n := range m.nets {
		if n.info.Default {
			idx.DefaultCreated = n.info.Created
		} else {
			idx.Networks = append(idx.Networks, n.info)
		}
	}
	slices.SortFunc(idx.Networks, func(a, b Info) int { return a.Created.Compare(b.Created) })
	if err := os.MkdirAll(m.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("save networks: %w", err)
	}
	if err := atomicfile.WriteJSON(filepath.Join(m.cfg.Dir, indexFile), idx); err != nil {
		return fmt.Errorf("save networks: %w", err)
	}
	return nil
}

// fabricLocked returns n's data path (its switch or its bridge),
// starting it on first use.
func (m *Manager) fabricLocked(n *netw) (fabric, error) {
	if m.closed {
		return nil, errdefs.Unavailable(errors.New("the engine's networks are closed"))
	}
	if n.fab != nil {
		return n.fab, nil
	}
	res := &resolver{names: n.names, subnet: n.info.Subnet, hostAlias: n.info.HostAlias(), hostResolvers: m.resolvers, internal: n.info.Internal, log: m.log.With("network", n.info.Name)}
	var fab fabric
	var err error
	if m.bridges != nil {
		fab, err = m.bridges.open(n.info, res)
	} else {
		fab, err = newUserSwitch(n.info, m.cfg.HostLoopback, res, m.inBerth)
	}
	if err != nil {
		return nil, err
	}
	n.fab, n.res = fab, res
	return fab, nil
}

// AttachRequest is one container run's place on a network.
type AttachRequest struct {
	// ContainerID and Name are the container's; both resolve on the
	// network while the attachment lasts.
	ContainerID, Name string
	// Network names the network ("" or "default": the default one).
	Network string
	// Aliases are more names for the container on this network.
	Aliases []string
	// IP is the address the container asks for (--ip); zero: the one it
	// had on the network, else the lowest free one.
	IP netip.Addr
	// DNS are the container's --dns servers: its resolver's upstreams.
	DNS []netip.Addr
	// Ports are the ports it publishes.
	Ports []PortSpec
}

// Attach joins a container to its network for one run: it leases the
// container's address (the one it had, if any), binds the host side of
// each published port, so that a port in use fails here, before the VM
// boots, and makes its names resolve on the network. The attachment's
// Network is what the VM's NIC is given; Close withdraws the ports and
// the names at the run's end (the address stays the container's until
// Release).
func (m *Manager) Attach(ctx context.Context, req AttachRequest) (*Attachment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.findLocked(req.Network)
	if err != nil {
		return nil, err
	}
	fab, err := m.fabricLocked(n)
	if err != nil {
		return nil, err
	}
	ip := req.IP
	if ip.IsValid() {
		if n.info.Default {
			return nil, errdefs.InvalidArgument(fmt.Errorf("--ip %s: user specified IP address is supported on user defined networks only (the container is on the default network)", ip))
		}
		if err := n.ipam.LeaseAddr(req.ContainerID, ip); err != nil {
			return nil, fmt.Errorf("--ip on network %s: %w", n.info.Name, err)
		}
	} else if ip, err = n.ipam.Lease(req.ContainerID); err != nil {
		return nil, err
	}
	nic, err := fab.nic(req.ContainerID)
	if err != nil {
		return nil, err
	}
	a := &Attachment{
		nic:   nic,
		names: n.names,
		id:    req.ContainerID,
		plan: vmm.GuestNetwork{
			Address: netip.PrefixFrom(ip, n.info.Subnet.Bits()),
			Gateway: n.info.Gateway(),
			MTU:     mtu,
			DNS:     []netip.Addr{n.info.Gateway()},
		},
		info: n.info,
	}
	for _, p := range req.Ports {
		pub, err := publish(fab, ip, p, m.log.With("container", req.ContainerID))
		if err != nil {
			a.Close()
			return nil, err
		}
		a.ports = append(a.ports, pub)
	}
	n.names.add(Endpoint{ContainerID: req.ContainerID, Name: req.Name, Aliases: slices.Clone(req.Aliases), Address: ip, DNS: slices.Clone(req.DNS)})
	return a, nil
}

// Close stops every network's switch (containers still attached lose
// their network) and refuses further Attach calls.
func (m *Manager) Close() error {
	m.mu.Lock()
	var fabs []fabric
	for _, n := range m.nets {
		if n.fab != nil {
			fabs = append(fabs, n.fab)
			n.fab = nil
		}
	}
	m.closed = true
	m.mu.Unlock()
	for _, f := range fabs {
		f.close()
	}
	if m.bridges != nil {
		return m.bridges.close()
	}
	return nil
}

// Attachment is one container run's place on a network: its address
// plan, its names and the ports it publishes.
type Attachment struct {
	nic   nic
	names *names
	id    string
	info  Info
	plan  vmm.GuestNetwork
	ports []published
	once  sync.Once
}

// Network is the VM's NIC: the address plan the guest applies and the
// switch its frames go to.
func (a *Attachment) Network() *vmm.Network {
	plan := a.plan
	n := a.nic.network()
	n.Plan = &plan
	return n
}

// Address is the container's address.
func (a *Attachment) Address() netip.Addr { return a.plan.Address.Addr() }

// NetworkName is the name of the network attached to.
func (a *Attachment) NetworkName() string { return a.info.Name }

// HostAlias is the network's address for the host (host.berth.internal).
func (a *Attachment) HostAlias() netip.Addr { return a.info.HostAlias() }

// Ports are the published ports as bound (a host port of 0 in the spec
// is the one the kernel picked).
func (a *Attachment) Ports() []PortSpec {
	out := make([]PortSpec, 0, len(a.ports))
	for _, p := range a.ports {
		out = append(out, p.bound())
	}
	return out
}

// Close withdraws the container's names and published ports: their
// listeners close and the connections through them end. It waits for
// their goroutines.
func (a *Attachment) Close() error {
	a.once.Do(func() {
		a.names.remove(a.id)
		for _, p := range a.ports {
			p.close()
		}
		a.nic.release()
	})
	return nil
}

// lastHost is p's last address before the broadcast address.
func lastHost(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	host |= ^uint32(0) >> p.Bits()
	host--
	return netip.AddrFrom4([4]byte{byte(host >> 24), byte(host >> 16), byte(host >> 8), byte(host)})
}

// published is one published port as bound: a tcpPublisher or a
// udpPublisher.
type published interface {
	// bound is the spec with the host address and port it is bound to.
	bound() PortSpec
	// close unbinds the host side and waits for what it started.
	close()
}

// publish binds spec's host side (the first free port of its range, if
// it has one) and starts serving it.
func publish(fab fabric, ip netip.Addr, spec PortSpec, log *slog.Logger) (published, error) {
	one := func(s PortSpec) (published, error) {
		if s.Proto == "udp" {
			return publishUDP(fab, ip, s, log)
		}
		return publishTCP(fab, ip, s, log)
	}
	if spec.HostPortEnd == 0 || spec.HostPort == 0 {
		spec.HostPortEnd = 0
		return one(spec)
	}
	for port := int(spec.HostPort); port <= int(spec.HostPortEnd); port++ {
		s := spec
		s.HostPort, s.HostPortEnd = uint16(port), 0
		p, err := one(s)
		if err == nil || !errors.Is(err, errdefs.ErrConflict) {
			return p, err
		}
	}
	return nil, errdefs.Conflict(fmt.Errorf("publish %s: every host port from %d to %d on %s is in use: pick another range", spec, spec.HostPort, spec.HostPortEnd, spec.hostIP()))
}

// publisher is one published TCP port: a listener on the host whose
// connections it carries to the container's port through the switch.
type publisher struct {
	spec PortSpec
	ln   net.Listener
	fab  fabric
	ip   netip.Addr
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// publishTCP binds spec's host side and starts serving it.
func publishTCP(fab fabric, ip netip.Addr, spec PortSpec, log *slog.Logger) (*publisher, error) {
	ln, err := net.Listen("tcp", spec.listenAddr())
	if err != nil {
		return nil, bindError(spec, err)
	}
	if spec.HostIP == (netip.Addr{}) {
		spec.HostIP = DefaultHostIP
	}
	spec.HostPort = uint16(ln.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{spec: spec, ln: ln, fab: fab, ip: ip, log: log, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// bindError explains why spec's host side could not be bound.
func bindError(spec PortSpec, err error) error {
	addr := spec.listenAddr()
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		suffix, proto := "", "tcp"
		if spec.Proto == "udp" {
			suffix, proto = "/udp", "udp"
		}
		by := ""
		if h, ok := holderOf("/proc", proto, spec.HostPort); ok {
			by = " by " + h.describe()
		}
		return errdefs.Conflict(fmt.Errorf("publish %s: host port %d on %s is already in use%s: pick another host port (-p OTHER:%d%s) or stop what listens there", spec, spec.HostPort, addr, by, spec.ContainerPort, suffix))
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return errdefs.InvalidArgument(fmt.Errorf("publish %s: %s is not an address of this host", spec, spec.HostIP))
	case errors.Is(err, syscall.EACCES):
		return errdefs.PermissionDenied(fmt.Errorf("publish %s: host port %d needs privileges Berth does not have: use a port above 1023", spec, spec.HostPort))
	}
	return fmt.Errorf("publish %s: %w", spec, err)
}

func (p *publisher) bound() PortSpec { return p.spec }

func (p *publisher) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.carry(c)
	}
}

// carry joins one host connection to the container's port.
func (p *publisher) carry(c net.Conn) {
	defer p.wg.Done()
	if !p.track(c) {
		c.Close()
		return
	}
	defer p.untrack(c)
	g, err := p.fab.dialTCP(p.ctx, p.ip, p.spec.ContainerPort)
	if err != nil {
		p.log.Debug("published port: dial container", "port", p.spec.String(), "err", err)
		c.Close()
		return
	}
	if !p.track(g) {
		c.Close()
		g.Close()
		return
	}
	defer p.untrack(g)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go pipe(g, c)
	go pipe(c, g)
	<-done
	<-done
	c.Close()
	g.Close()
}

func (p *publisher) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *publisher) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// close stops the listener and ends every connection through it.
func (p *publisher) close() {
	p.mu.Lock()
	p.cancel()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
