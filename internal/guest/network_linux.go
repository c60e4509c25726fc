package guest

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
)

// configureNetwork validates r, then (with Config.ConfigureLinks) brings
// up lo and the NIC, and writes /etc/resolv.conf, /etc/hosts and
// /etc/hostname into the rootfs.
func (s *Server) configureNetwork(r *agentpb.ConfigureNetworkRequest) error {
	if err := validateNetwork(r); err != nil {
		return err
	}
	if s.cfg.ConfigureLinks {
		if err := configureLinks(r); err != nil {
			return err
		}
	}
	files := []struct{ name, content string }{
		{"resolv.conf", resolvConf(r)},
		{"hosts", hostsFile(r)},
	}
	if r.Hostname != "" {
		files = append(files, struct{ name, content string }{"hostname", r.Hostname + "\n"})
	}
	for _, f := range files {
		if err := writeEtcFile(s.cfg.Rootfs, f.name, f.content); err != nil {
			return fmt.Errorf("configure network: %w", err)
		}
	}
	return nil
}

func validateNetwork(r *agentpb.ConfigureNetworkRequest) error {
	bad := func(format string, a ...any) error {
		return errdefs.InvalidArgument(fmt.Errorf("configure network: "+format, a...))
	}
	if r.Address != "" {
		if _, _, err := net.ParseCIDR(r.Address); err != nil {
			return bad("address %q is not in CIDR form (10.0.2.15/24)", r.Address)
		}
	}
	if r.Gateway != "" && net.ParseIP(r.Gateway) == nil {
		return bad("gateway %q is not an IP address", r.Gateway)
	}
	for _, d := range append(r.DnsServers, r.DnsUpstreams...) {
		if net.ParseIP(d) == nil {
			return bad("DNS server %q is not an IP address", d)
		}
	}
	for _, h := range r.Hosts {
		if net.ParseIP(h.Ip) == nil || len(h.Names) == 0 {
			return bad("hosts entry %q %v needs an IP address and a name", h.Ip, h.Names)
		}
	}
	if strings.ContainsAny(r.Hostname, " \t\n/") || len(r.Hostname) > 64 {
		return bad("hostname %q is not a valid host name", r.Hostname)
	}
	if r.Mtu != 0 && (r.Mtu < 68 || r.Mtu > 65535) {
		return bad("MTU %d is out of range", r.Mtu)
	}
	return nil
}

// configureLinks brings lo up and, when an address is given, configures
// the NIC: MTU, address, up, default route; and sets the guest hostname.
func configureLinks(r *agentpb.ConfigureNetworkRequest) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("configure network: find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("configure network: bring lo up: %w", err)
	}
	if r.Hostname != "" {
		if err := unix.Sethostname([]byte(r.Hostname)); err != nil {
			return fmt.Errorf("configure network: set hostname: %w", err)
		}
	}
	if r.Address == "" {
		return nil
	}
	link, err := findNIC(r.Interface)
	if err != nil {
		return err
	}
	name := link.Attrs().Name
	if r.Mtu != 0 {
		if err := netlink.LinkSetMTU(link, int(r.Mtu)); err != nil {
			return fmt.Errorf("configure network: set MTU %d on %s: %w", r.Mtu, name, err)
		}
	}
	addr, err := netlink.ParseAddr(r.Address)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("configure network: address %q: %w", r.Address, err))
	}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("configure network: add %s to %s: %w", r.Address, name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("configure network: bring %s up: %w", name, err)
	}
	if r.Gateway != "" {
		gw := net.ParseIP(r.Gateway)
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}
		if err := netlink.RouteReplace(route); err != nil {
			return fmt.Errorf("configure network: default route via %s on %s: %w", r.Gateway, name, err)
		}
	}
	return nil
}

// findNIC returns the named link, or the first one that is not loopback.
func findNIC(name string) (netlink.Link, error) {
	if name != "" {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return nil, errdefs.NotFound(fmt.Errorf("configure network: no interface %q: %w", name, err))
		}
		return l, nil
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("configure network: list interfaces: %w", err)
	}
	var seen []string
	for _, l := range links {
		seen = append(seen, l.Attrs().Name)
		if l.Attrs().Flags&net.FlagLoopback == 0 && l.Type() != "dummy" {
			return l, nil
		}
	}
	return nil, errdefs.NotFound(fmt.Errorf("configure network: no network interface but loopback (found %v)", seen))
}

func resolvConf(r *agentpb.ConfigureNetworkRequest) string {
	var b strings.Builder
	for _, d := range r.DnsServers {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	if len(r.DnsSearch) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(r.DnsSearch, " "))
	}
	if len(r.DnsOptions) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(r.DnsOptions, " "))
	}
	if len(r.DnsUpstreams) > 0 {
		fmt.Fprintf(&b, "\n# The nameserver above is Berth's resolver for this network; names\n# outside it are forwarded to:\n# ExtServers: [%s]\n", strings.Join(r.DnsUpstreams, " "))
	}
	return b.String()
}

func hostsFile(r *agentpb.ConfigureNetworkRequest) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if r.Hostname != "" && r.Address != "" {
		ip, _, _ := net.ParseCIDR(r.Address)
		fmt.Fprintf(&b, "%s\t%s\n", ip, r.Hostname)
	}
	for _, h := range r.Hosts {
		fmt.Fprintf(&b, "%s\t%s\n", h.Ip, strings.Join(h.Names, " "))
	}
	return b.String()
}

// writeEtcFile writes /etc/name inside root, never following a symlink
// out of it (a symlink at the name itself is replaced by the file).
func writeEtcFile(root, name, content string) error {
	if err := mkdirInRoot(root, "etc"); err != nil {
		return fmt.Errorf("write /etc/%s: %w", name, err)
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("write /etc/%s: %w", name, err)
	}
	defer unix.Close(rfd)
	dfd, err := unix.Openat2(rfd, "etc", &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("write /etc/%s: %w", name, err)
	}
	defer unix.Close(dfd)
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dfd, name, flags, 0o644)
	if errors.Is(err, unix.ELOOP) {
		if err = unix.Unlinkat(dfd, name, 0); err == nil {
			fd, err = unix.Openat(dfd, name, flags, 0o644)
		}
	}
	if err != nil {
		return fmt.Errorf("write /etc/%s: %w", name, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(content)); err != nil {
		return fmt.Errorf("write /etc/%s: %w", name, err)
	}
	return nil
}
