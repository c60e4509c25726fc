package guest

import (
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent/agentpb"
)

// TestConfigureLinks runs the netlink half of ConfigureNetwork in a
// throwaway network namespace (on a thread of its own, which is dropped
// afterwards) against a dummy interface.
func TestConfigureLinks(t *testing.T) {
	requireRoot(t)
	errc := make(chan error, 1)
	skip := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		if err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "eth9"}}); err != nil {
			verr := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth9"}, PeerName: "eth9p"})
			if verr != nil {
				skip <- fmt.Sprintf("skipping: this kernel can make neither a dummy (%v) nor a veth (%v) interface", err, verr)
				return
			}
		}
		errc <- configureLinks(&agentpb.ConfigureNetworkRequest{Interface: "eth9", Address: "10.9.0.2/24", Gateway: "10.9.0.1", Mtu: 1400})
		link, err := netlink.LinkByName("eth9")
		if err != nil {
			t.Error(err)
			return
		}
		if link.Attrs().MTU != 1400 || link.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("eth9: MTU %d flags %v, want 1400 and up", link.Attrs().MTU, link.Attrs().Flags)
		}
		addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != "10.9.0.2/24" {
			t.Errorf("eth9 addresses %v, want 10.9.0.2/24", addrs)
		}
		routes, _ := netlink.RouteList(link, netlink.FAMILY_V4)
		gw := false
		for _, r := range routes {
			if r.Gw.String() == "10.9.0.1" && (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") {
				gw = true
			}
		}
		if !gw {
			t.Errorf("no default route via 10.9.0.1: %v", routes)
		}
		lo, _ := netlink.LinkByName("lo")
		if lo == nil || lo.Attrs().Flags&net.FlagUp == 0 {
			t.Error("lo is not up")
		}
	}()
	<-done
	select {
	case why := <-skip:
		t.Skip(why)
	default:
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	default:
	}
}
