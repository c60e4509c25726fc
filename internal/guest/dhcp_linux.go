package guest

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
)

// Bounds of a DHCP exchange.
const (
	defaultLeaseTimeout = 10 * time.Second
	maxLeaseTimeout     = time.Minute
	// leaseTry is how long one DISCOVER or REQUEST waits for its answer
	// before it is sent again.
	leaseTry = 2 * time.Second
	// minRenew keeps a server's tiny lease time from busy-renewing.
	minRenew = 30 * time.Second
)

func (v *service) AcquireLease(ctx context.Context, r *agentpb.LeaseRequest) (*agentpb.Lease, error) {
	return v.s.acquireLease(ctx, r)
}

// acquireLease brings the NIC up, gets a lease from the network's DHCP
// server within the request's timeout and keeps renewing it in the
// background (replacing an earlier renewal on that NIC). It does not
// configure the address: the host does, with ConfigureNetwork.
func (s *Server) acquireLease(ctx context.Context, r *agentpb.LeaseRequest) (*agentpb.Lease, error) {
	timeout := defaultLeaseTimeout
	if r.TimeoutMs != 0 {
		timeout = time.Duration(r.TimeoutMs) * time.Millisecond
	}
	if timeout > maxLeaseTimeout {
		return nil, errdefs.InvalidArgument(fmt.Errorf("acquire lease: timeout %s is over %s", timeout, maxLeaseTimeout))
	}
	if strings.ContainsAny(r.Hostname, " \t\n/") || len(r.Hostname) > 64 {
		return nil, errdefs.InvalidArgument(fmt.Errorf("acquire lease: hostname %q is not a valid host name", r.Hostname))
	}
	link, err := findNIC(r.Interface)
	if err != nil {
		return nil, err
	}
	name := link.Attrs().Name
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("acquire lease on %s: bring it up: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	mods := []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(dhcpv4.OptionInterfaceMTU)}
	if r.Hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(r.Hostname)))
	}
	c, lease, err := requestLease(ctx, name, mods)
	if err != nil {
		return nil, err
	}
	out, err := leaseReply(name, lease)
	if err != nil {
		c.Close()
		return nil, err
	}
	s.keepLease(name, c, lease, mods)
	return out, nil
}

// requestLease runs DISCOVER/OFFER/REQUEST/ACK on the NIC name until ctx
// ends, resending every leaseTry. On success the client stays open for
// renewals.
func requestLease(ctx context.Context, name string, mods []dhcpv4.Modifier) (*nclient4.Client, *nclient4.Lease, error) {
	retries := 1
	if dl, ok := ctx.Deadline(); ok {
		retries = max(1, int(time.Until(dl)/leaseTry))
	}
	c, err := nclient4.New(name, nclient4.WithTimeout(leaseTry), nclient4.WithRetry(retries))
	if err != nil {
		return nil, nil, fmt.Errorf("acquire lease on %s: open a DHCP client: %w", name, err)
	}
	start := time.Now()
	lease, err := c.Request(ctx, mods...)
	if err != nil {
		c.Close()
		var nak *nclient4.ErrNak
		if errors.As(err, &nak) {
			return nil, nil, fmt.Errorf("acquire lease on %s: the DHCP server refused the request: %w", name, err)
		}
		return nil, nil, errdefs.Unavailable(fmt.Errorf("acquire lease on %s: no DHCP server answered within %s: %w",
			name, time.Since(start).Round(100*time.Millisecond), err))
	}
	return c, lease, nil
}

// leaseReply checks a lease's ACK and turns it into the agent's answer.
func leaseReply(name string, lease *nclient4.Lease) (*agentpb.Lease, error) {
	ack := lease.ACK
	bad := func(format string, a ...any) error {
		return fmt.Errorf("acquire lease on %s: the DHCP server's answer is unusable: "+format, append([]any{name}, a...)...)
	}
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || !ip.IsGlobalUnicast() {
		return nil, bad("address %v", ack.YourIPAddr)
	}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = net.CIDRMask(24, 32) // no option 1: vmnet and most servers hand out a /24

	}
	bits, total := mask.Size()
	if total != 32 || bits == 0 || bits > 30 {
		return nil, bad("subnet mask %v", net.IP(mask))
	}
	out := &agentpb.Lease{
		Interface:    name,
		Address:      netip.PrefixFrom(ip, bits).String(),
		LeaseSeconds: uint32(ack.IPAddressLeaseTime(0) / time.Second),
	}
	if s := ack.ServerIdentifier(); s != nil {
		out.Server = s.String()
	}
	if rs := ack.Router(); len(rs) > 0 {
		gw, ok := netip.AddrFromSlice(rs[0].To4())
		if !ok || !netip.PrefixFrom(ip, bits).Masked().Contains(gw) {
			return nil, bad("router %v outside %s", rs[0], out.Address)
		}
		out.Gateway = gw.String()
	}
	for _, d := range ack.DNS() {
		if d4 := d.To4(); d4 != nil && !d4.IsUnspecified() {
			out.DnsServers = append(out.DnsServers, d4.String())
		}
	}
	if v := ack.Options.Get(dhcpv4.OptionInterfaceMTU); len(v) == 2 {
		if mtu := binary.BigEndian.Uint16(v); mtu >= 576 {
			out.Mtu = uint32(mtu)
		}
	}
	return out, nil
}

// keepLease renews lease at half its time for as long as the guest runs
// (or until the next lease on the NIC replaces it), retrying a failed
// renewal after a quarter of the time. A lease with no time (infinite) is
// not renewed.
func (s *Server) keepLease(name string, c *nclient4.Client, lease *nclient4.Lease, mods []dhcpv4.Modifier) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	if s.leases == nil {
		s.leases = map[string]context.CancelFunc{}
	}
	if old := s.leases[name]; old != nil {
		old()
	}
	s.leases[name] = cancel
	s.mu.Unlock()
	go func() {
		defer c.Close()
		t := lease.ACK.IPAddressLeaseTime(0)
		if t <= 0 || t == time.Duration(^uint32(0))*time.Second {
			<-ctx.Done()
			return
		}
		floor := cmp.Or(s.renewFloor, minRenew)
		wait := max(t/2, floor)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			rctx, rcancel := context.WithTimeout(ctx, leaseTry*3)
			next, err := c.Renew(rctx, lease, mods...)
			rcancel()
			if err != nil {
				wait = max(t/4, floor)
				s.logger.Printf("dhcp: renewing the lease of %s on %s failed (again in %s): %v", lease.ACK.YourIPAddr, name, wait, err)
				continue
			}
			if !next.ACK.YourIPAddr.Equal(lease.ACK.YourIPAddr) {
				s.logger.Printf("dhcp: the server renewed %s on %s as %s; keeping the first address", lease.ACK.YourIPAddr, name, next.ACK.YourIPAddr)
			}
			lease = next
			t = lease.ACK.IPAddressLeaseTime(t)
			wait = max(t/2, floor)
		}
	}()
}
