package network

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/testenv"
	mobynetwork "github.com/moby/moby/api/types/network"
)

func TestParsePortSpec(t *testing.T) {
	v6 := netip.MustParseAddr("::1")
	any4 := netip.MustParseAddr("0.0.0.0")
	lo := netip.MustParseAddr("127.0.0.1")
	tcp := func(host, ctr uint16) PortSpec { return PortSpec{HostPort: host, ContainerPort: ctr, Proto: "tcp"} }
	for _, c := range []struct {
		in   string
		want []PortSpec
		err  string
	}{
		{"8080:80", []PortSpec{tcp(8080, 80)}, ""},
		{"8080:80/tcp", []PortSpec{tcp(8080, 80)}, ""},
		{"80", []PortSpec{tcp(0, 80)}, ""},
		{":80", []PortSpec{tcp(0, 80)}, ""},
		{"0.0.0.0:8080:80", []PortSpec{{HostIP: any4, HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}, ""},
		{"0.0.0.0::80", []PortSpec{{HostIP: any4, ContainerPort: 80, Proto: "tcp"}}, ""},
		{"[::1]:8080:80", []PortSpec{{HostIP: v6, HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}, ""},
		{"5353:53/udp", []PortSpec{{HostPort: 5353, ContainerPort: 53, Proto: "udp"}}, ""},
		{"127.0.0.1:8080:80/udp", []PortSpec{{HostIP: lo, HostPort: 8080, ContainerPort: 80, Proto: "udp"}}, ""},
		{"53/udp", []PortSpec{{ContainerPort: 53, Proto: "udp"}}, ""},
		// Ranges, by Docker's rules.
		{"8000-8002:80-82", []PortSpec{tcp(8000, 80), tcp(8001, 81), tcp(8002, 82)}, ""},
		{"127.0.0.1:8000-8001:80-81/udp", []PortSpec{{HostIP: lo, HostPort: 8000, ContainerPort: 80, Proto: "udp"}, {HostIP: lo, HostPort: 8001, ContainerPort: 81, Proto: "udp"}}, ""},
		{"8000-8010:80", []PortSpec{{HostPort: 8000, HostPortEnd: 8010, ContainerPort: 80, Proto: "tcp"}}, ""},
		{"80-81", []PortSpec{tcp(0, 80), tcp(0, 81)}, ""},
		{"0:80-81", []PortSpec{tcp(0, 80), tcp(0, 81)}, ""},
		{"8000-8000:80", []PortSpec{tcp(8000, 80)}, ""},
		{"8000-8001:80-82", nil, "host range 8000-8001 has 2 ports, container range 80-82 has 3"},
		{"8000:80-82", nil, "host range 8000 has 1 ports, container range 80-82 has 3"},
		{"8002-8000:80", nil, `range "8002-8000" ends before it starts`},
		{"8000-:80", nil, "end is missing"},
		{"8000-x:80", nil, `end "x" is not a number`},
		{"0-5:80", nil, `host port range "0-5" starts at 0`},
		{"8000:0-2", nil, "container port 0"},
		{"8000-8010-8020:80", nil, "not a number"},
		// Malformed.
		{"8080:80/sctp", nil, "sctp ports are not published"},
		{"8080:80/xyz", nil, "unknown protocol"},
		{"8080:80/", nil, "unknown protocol"},
		{"::1:8080:80", nil, "too many colons"},
		{"[::1]8080:80", nil, "in brackets"},
		{"host:8080:80", nil, "is not an IP address"},
		{"70000:80", nil, "not a number from 0 to 65535"},
		{"8080:0", nil, "container port 0"},
		{"8080:", nil, "container port is missing"},
		{"", nil, "container port is missing"},
	} {
		got, err := ParsePortSpec(c.in)
		if c.err != "" {
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), `"`+c.in+`"`) {
				t.Errorf("ParsePortSpec(%q) = %v, want invalid argument naming it with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParsePortSpec(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	if s := tcp(8080, 80).String(); s != "127.0.0.1:8080->80/tcp" {
		t.Errorf("String of a spec without an address = %q, want the loopback default", s)
	}
	if s := (PortSpec{HostPort: 8000, HostPortEnd: 8010, ContainerPort: 80, Proto: "udp"}).String(); s != "127.0.0.1:8000-8010->80/udp" {
		t.Errorf("String of a range = %q", s)
	}
}

func TestPortMapRoundTrip(t *testing.T) {
	p80, _ := mobynetwork.PortFrom(80, mobynetwork.TCP)
	p443, _ := mobynetwork.PortFrom(443, mobynetwork.TCP)
	pm := mobynetwork.PortMap{
		p443: {{HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: "8443"}},
		p80:  {{HostPort: "8080"}, {HostPort: ""}},
	}
	specs, err := FromPortMap(pm)
	if err != nil {
		t.Fatal(err)
	}
	want := []PortSpec{{ContainerPort: 80, Proto: "tcp"}, {HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		{HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 8443, ContainerPort: 443, Proto: "tcp"}}
	if len(specs) != len(want) {
		t.Fatalf("FromPortMap = %+v", specs)
	}
	for i := range want {
		if specs[i] != want[i] {
			t.Errorf("spec %d = %+v, want %+v", i, specs[i], want[i])
		}
	}
	back := ToPortMap(specs)
	if b := back[p80]; len(b) != 2 || b[0].HostIP != DefaultHostIP || b[1].HostPort != "8080" {
		t.Errorf("ToPortMap 80: %+v", b)
	}
	if b := back[p443]; len(b) != 1 || b[0].HostIP.String() != "0.0.0.0" || b[0].HostPort != "8443" {
		t.Errorf("ToPortMap 443: %+v", b)
	}
	if ToPortMap(nil) != nil {
		t.Error("ToPortMap(nil) is not nil")
	}

	// tcp and udp on one port number stay apart, tcp first.
	pUDP, _ := mobynetwork.PortFrom(80, mobynetwork.UDP)
	both, err := FromPortMap(mobynetwork.PortMap{pUDP: {{HostPort: "8080"}}, p80: {{HostPort: "8080"}}})
	if err != nil || len(both) != 2 || both[0].Proto != "tcp" || both[1].Proto != "udp" || both[1].HostPort != 8080 {
		t.Fatalf("FromPortMap of 80/tcp and 80/udp = %+v, %v", both, err)
	}
	if back := ToPortMap(both); len(back[p80]) != 1 || len(back[pUDP]) != 1 || back[pUDP][0].HostPort != "8080" {
		t.Errorf("ToPortMap of 80/tcp and 80/udp = %+v", back)
	}

	pSCTP, _ := mobynetwork.PortFrom(53, mobynetwork.SCTP)
	rng, err := FromPortMap(mobynetwork.PortMap{p80: {{HostPort: "8000-8010"}}})
	if err != nil || len(rng) != 1 || rng[0].HostPort != 8000 || rng[0].HostPortEnd != 8010 {
		t.Errorf("FromPortMap of a host range = %+v, %v", rng, err)
	}
	for _, bad := range []mobynetwork.PortMap{
		{pSCTP: {{HostPort: "53"}}},
		{p80: {{HostPort: "8010-8000"}}},
		{p80: {{HostPort: "0-10"}}},
		{p80: {{HostPort: "x"}}},
	} {
		if _, err := FromPortMap(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("FromPortMap(%v) = %v, want invalid argument", bad, err)
		}
	}
}

// TestPublishRange binds real host sockets: a host range skips a port in
// use for the next free one; a range all in use, or one port in use, is
// a conflict naming it, for tcp and udp alike. (No switch: nothing
// connects through the ports.)
func TestPublishRange(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, proto := range []string{"tcp", "udp"} {
		held, port := holdPort(t, proto)
		p, err := publish(nil, netip.Addr{}, PortSpec{HostPort: port, HostPortEnd: port + 20, ContainerPort: 80, Proto: proto}, log)
		if err != nil {
			t.Fatalf("%s: publish a range whose first port is in use: %v", proto, err)
		}
		b := p.bound()
		if b.HostPort == port || b.HostPort > port+20 || b.HostPortEnd != 0 || b.HostIP != DefaultHostIP || b.Proto != proto {
			t.Errorf("%s: bound %+v, want a port in %d-%d other than %d", proto, b, port, port+20, port)
		}
		p.close()

		_, err = publish(nil, netip.Addr{}, PortSpec{HostPort: port, HostPortEnd: port, ContainerPort: 80, Proto: proto}, log)
		if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), fmt.Sprintf("every host port from %d to %d on 127.0.0.1 is in use", port, port)) {
			t.Errorf("%s: publish a range all in use: %v", proto, err)
		}
		_, err = publish(nil, netip.Addr{}, PortSpec{HostPort: port, ContainerPort: 80, Proto: proto}, log)
		if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), fmt.Sprintf("host port %d on 127.0.0.1:%d is already in use", port, port)) {
			t.Errorf("%s: publish a port in use: %v", proto, err)
		}
		held.Close()
	}
}

// holdPort binds a free port on 127.0.0.1 for proto until the returned
// closer is closed.
func holdPort(t *testing.T, proto string) (io.Closer, uint16) {
	t.Helper()
	if proto == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc, uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, uint16(ln.Addr().(*net.TCPAddr).Port)
}

func TestPublishAll(t *testing.T) {
	exposed := mobynetwork.PortSet{
		mobynetwork.MustParsePort("80/tcp"):   {},
		mobynetwork.MustParsePort("53/udp"):   {},
		mobynetwork.MustParsePort("443/tcp"):  {},
		mobynetwork.MustParsePort("132/sctp"): {},
	}
	bound := mobynetwork.PortMap{mobynetwork.MustParsePort("443/tcp"): {{HostPort: "8443"}}}
	got := PublishAll(exposed, bound)
	want := []PortSpec{{ContainerPort: 53, Proto: "udp"}, {ContainerPort: 80, Proto: "tcp"}}
	if !slices.Equal(got, want) {
		t.Errorf("PublishAll = %+v, want %+v (443 bound already, sctp not published)", got, want)
	}
	if got := PublishAll(nil, nil); len(got) != 0 {
		t.Errorf("PublishAll(nil) = %+v", got)
	}
}

// TestPortInUseNamesTheHolder: a host port another process listens on
// fails to publish naming that process (found through /proc, on Linux);
// one this process holds is named as Berth itself.
func TestPortInUseNamesTheHolder(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("not Linux: the holder of a port is looked up in Linux's /proc only")
	}
	bb := testenv.RequireTool(t, testenv.BusyboxBin, "busybox-static")
	log := slog.New(slog.DiscardHandler)
	_, port := holdPort(t, "tcp")
	_, err := publish(nil, netip.Addr{}, PortSpec{HostPort: port, ContainerPort: 80, Proto: "tcp"}, log)
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "already in use by Berth itself (another container publishes it): pick another host port (-p OTHER:80)") {
		t.Errorf("publish a port this process holds: %v", err)
	}
	_, uport := holdPort(t, "udp")
	_, err = publish(nil, netip.Addr{}, PortSpec{HostPort: uport, ContainerPort: 53, Proto: "udp"}, log)
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "already in use by Berth itself (another container publishes it): pick another host port (-p OTHER:53/udp)") {
		t.Errorf("publish a udp port this process holds: %v", err)
	}

	// Another process: busybox nc listening.
	held, free := holdPort(t, "tcp")
	held.Close()
	cmd := exec.Command(bb, "nc", "-l", "-p", strconv.Itoa(int(free)))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, ok := holderOf("/proc", "tcp", free)
		if ok && h.PID == cmd.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("holderOf(%d) = %+v, %v; want busybox nc, pid %d", free, h, ok, cmd.Process.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err = publish(nil, netip.Addr{}, PortSpec{HostPort: free, ContainerPort: 80, Proto: "tcp"}, log)
	if want := fmt.Sprintf("host port %d on 127.0.0.1:%d is already in use by busybox (pid %d)", free, free, cmd.Process.Pid); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("publish a port busybox holds: %v, want %q", err, want)
	}
	if h, ok := holderOf(t.TempDir(), "tcp", free); ok {
		t.Errorf("holderOf without a /proc = %+v, want unknown", h)
	}
}
