//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestNetworkBridgeMode runs `berth daemon --network-mode bridge` in a
// network namespace of its own (so nothing touches this host's
// network): busybox httpd in a container on a bridge network (at the
// address --ip asked for) is reached from the namespace's host side at
// the container's own address and through a published port on the
// namespace's loopback; a second container on that network reaches it
// by name, the outside (a second namespace behind a veth pair) under the
// host's address (NAT), and the host side at host.berth.internal but not
// its loopback; a third, on another bridge network, an --internal one,
// neither resolves nor reaches it, nor the outside; `berth system
// status` says bridge mode and why.
func TestNetworkBridgeMode(t *testing.T) {
	testenv.RequireRoot(t, "bridge mode (bridges, TAP devices, nftables in a network namespace)")
	home := shortHome(t)
	cmd := daemonCommand(home, []string{"--network-mode=bridge"})
	// No Pdeathsig: it fires when the forking OS thread ends, and
	// inNetns ends the threads it moves into namespaces.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	runDaemon(t, home, cmd)
	daemonPID := cmd.Process.Pid
	ns, err := netns.GetFromPid(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	if self, err := netns.Get(); err == nil {
		if self.Equal(ns) {
			t.Fatal("the daemon runs in this test's network namespace")
		}
		self.Close()
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	lo, err := nl.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := nl.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}

	// The daemon cannot reach this host's registry: the image is loaded.
	const ref = "test/busybox:bridge"
	tar := filepath.Join(t.TempDir(), "busybox.tar")
	if err := tarball.WriteToFile(tar, name.MustParseReference(ref), testenv.BusyboxImage(t, nil)); err != nil {
		t.Fatal(err)
	}
	mustOK(t, "load", berth(t, home, "load", "-q", "-i", tar))

	r := mustOK(t, "system status", berth(t, home, "system", "status"))
	if !strings.Contains(r.out, "bridge: each network is a Linux bridge") || !strings.Contains(r.out, "asked for with --network-mode bridge") {
		t.Errorf("berth system status does not say bridge mode and why:\n%s", r.out)
	}
	mustOK(t, "network create front", berth(t, home, "network", "create", "--subnet", "10.77.1.0/24", "front"))
	mustOK(t, "network create back", berth(t, home, "network", "create", "--internal", "--subnet", "10.77.2.0/24", "back"))

	const hostPort = 18080
	mustOK(t, "run -d web", berth(t, home, "run", "-d", "--name", "web", "--network", "front", "--ip", "10.77.1.50", "-p", fmt.Sprintf("127.0.0.1:%d:80", hostPort), ref,
		"sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec busybox httpd -f -p 80 -h /www"))
	r = mustOK(t, "inspect web", docker(t, home, "inspect", "--format", "{{.NetworkSettings.Networks.front.IPAddress}} {{.NetworkSettings.Networks.front.IPAMConfig.IPv4Address}}", "web"))
	webIP, asked, _ := strings.Cut(strings.TrimSpace(r.out), " ")
	if webIP != "10.77.1.50" || asked != webIP {
		t.Fatalf("web's address (asked for with --ip 10.77.1.50): %q", r.out)
	}

	// The namespace's host side: the container's own address, and the
	// published port.
	for _, addr := range []string{net.JoinHostPort(webIP, "80"), fmt.Sprintf("127.0.0.1:%d", hostPort)} {
		if body := httpGetIn(t, ns, addr, 60*time.Second); !strings.Contains(body, "hello-from-web") {
			t.Errorf("GET http://%s/ from the host side: %q", addr, body)
		}
	}

	// "Outside": a second namespace behind a veth pair, whose server
	// answers with the address a connection comes from.
	outside := outsideServer(t, nl)
	// The host side's own services: one on all addresses (reached at
	// the host alias), one on its loopback only (not reached).
	hostAll := greeterIn(t, ns, "0.0.0.0:0", "host-ok")
	hostLoop := greeterIn(t, ns, "127.0.0.1:0", "loopback-secret")

	// HTTP by hand over nc and names by nslookup: the image's static
	// busybox wget crashes in glibc's resolver.
	addr := `busybox nslookup %[1]s. %[2]s 2>&1 | awk '/^Name:/ {n=1} n && /^Address/ {print $NF; exit}'`
	script := `echo web=$(` + fmt.Sprintf(addr, "web", "") + `); ` +
		`printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 10 $(` + fmt.Sprintf(addr, "web", "") + `) 80; ` +
		`echo outside=$(busybox nc -w 5 ` + outside + ` </dev/null); ` +
		fmt.Sprintf(`echo host=$(busybox nc -w 5 host.berth.internal %d </dev/null); `, hostAll) +
		fmt.Sprintf(`echo loop=$(busybox nc -w 3 10.77.1.1 %d </dev/null; busybox nc -w 3 10.77.1.254 %d </dev/null)`, hostLoop, hostLoop)
	t0 := time.Now()
	r = berth(t, home, "run", "--rm", "--network", "front", ref, "sh", "-c", script)
	t.Logf("client on front (%s):\n%s%s", time.Since(t0).Round(time.Millisecond), r.out, r.err)
	if !strings.Contains(r.out, "web="+webIP+"\n") || !strings.Contains(r.out, "hello-from-web") {
		t.Errorf("a container on front did not reach web by name")
	}
	if !strings.Contains(r.out, "outside=from 10.200.0.1:") {
		t.Errorf("a container's connection out did not leave under the host's address (NAT)")
	}
	if !strings.Contains(r.out, "host=host-ok") || strings.Contains(r.out, "loopback-secret") {
		t.Errorf("a container did not reach the host side at host.berth.internal, or reached its loopback")
	}

	// On back: web's name neither from back's resolver nor from front's
	// (asked at front's gateway), web's address not reached; back is
	// --internal: the outside is not reached either.
	script = `echo web=$(` + fmt.Sprintf(addr, "web", "") + `); echo viafront=$(busybox timeout 3 ` + fmt.Sprintf(addr, "web", "10.77.1.1") + `); ` +
		`printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 3 ` + webIP + ` 80; echo nc-exit=$?; ` +
		`echo outside=$(busybox nc -w 3 ` + outside + ` </dev/null)`
	t0 = time.Now()
	r = berth(t, home, "run", "--rm", "--network", "back", ref, "sh", "-c", script)
	t.Logf("client on back (%s):\n%s%s", time.Since(t0).Round(time.Millisecond), r.out, r.err)
	if !strings.Contains(r.out, "web=\n") || !strings.Contains(r.out, "viafront=\n") || strings.Contains(r.out, "hello-from-web") || !strings.Contains(r.out, "nc-exit=") {
		t.Errorf("a container on back resolved or reached web on front")
	}
	if !strings.Contains(r.out, "outside=\n") {
		t.Errorf("a container on back, an internal network, reached the outside")
	}
	mustOK(t, "rm web", berth(t, home, "rm", "-f", "web"))

	// A daemon that stops takes its bridges, TAP devices and table
	// away (the namespace lives on through ns).
	if err := syscall.Kill(daemonPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(daemonPID, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	links, err := nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if n := l.Attrs().Name; strings.HasPrefix(n, "berth") || strings.HasPrefix(n, "bt-") {
			t.Errorf("link %s is left after the daemon stopped", n)
		}
	}
	nft, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := nft.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		t.Errorf("nftables table %s is left after the daemon stopped", tb.Name)
	}
}

// outsideServer makes a second network namespace joined to the daemon's
// (nl's) by a veth pair, 10.200.0.1/24 on the daemon's side and
// 10.200.0.2/24 on the other, where a TCP server answers each
// connection with "from ADDR:PORT" (its peer) and closes it. It
// returns the server's address as nc takes it ("10.200.0.2 PORT").
func outsideServer(t *testing.T, nl *netlink.Handle) string {
	t.Helper()
	type made struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan made, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in the new namespace
		ns, err := netns.New()
		ch <- made{ns, err}
	}()
	m := <-ch
	if m.err != nil {
		t.Fatal(m.err)
	}
	t.Cleanup(func() { m.ns.Close() })
	la := netlink.NewLinkAttrs()
	la.Name = "out0"
	if err := nl.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "out1", PeerNamespace: netlink.NsFd(m.ns)}); err != nil {
		t.Fatal(err)
	}
	peer, err := netlink.NewHandleAt(m.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	for _, end := range []struct {
		h    *netlink.Handle
		name string
		addr string
	}{{nl, "out0", "10.200.0.1/24"}, {peer, "out1", "10.200.0.2/24"}, {peer, "lo", ""}} {
		l, err := end.h.LinkByName(end.name)
		if err != nil {
			t.Fatal(err)
		}
		if end.addr != "" {
			a, _ := netlink.ParseAddr(end.addr)
			if err := end.h.AddrAdd(l, a); err != nil {
				t.Fatal(err)
			}
		}
		if err := end.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	var ln net.Listener
	if _, err := inNetns(m.ns, func() (string, error) {
		var err error
		ln, err = net.Listen("tcp4", "10.200.0.2:0")
		return "", err
	}); err != nil {
		t.Fatal(err)
	}
	answerEach(t, ln, func(c net.Conn) string { return fmt.Sprintf("from %s", c.RemoteAddr()) })
	return fmt.Sprintf("10.200.0.2 %d", ln.Addr().(*net.TCPAddr).Port)
}

// greeterIn listens on addr in network namespace ns and answers each
// connection with greeting; it returns the port.
func greeterIn(t *testing.T, ns netns.NsHandle, addr, greeting string) int {
	t.Helper()
	var ln net.Listener
	if _, err := inNetns(ns, func() (string, error) {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return "", err
	}); err != nil {
		t.Fatal(err)
	}
	answerEach(t, ln, func(net.Conn) string { return greeting })
	return ln.Addr().(*net.TCPAddr).Port
}

// httpGetIn GETs / from addr over HTTP/1.0 from network namespace ns,
// retrying until it answers or limit passes, and returns the response.
func httpGetIn(t *testing.T, ns netns.NsHandle, addr string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		var body string
		body, last = inNetns(ns, func() (string, error) {
			d := net.Dialer{Timeout: 3 * time.Second}
			c, err := d.DialContext(context.Background(), "tcp4", addr)
			if err != nil {
				return "", err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
				return "", err
			}
			b, err := io.ReadAll(c)
			return string(b), err
		})
		if last == nil && strings.Contains(body, "200 OK") {
			return body
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("GET http://%s/ in the daemon's network namespace: %v", addr, last)
	return ""
}

// inNetns runs f on an OS thread moved into network namespace ns (the
// sockets f opens there are the namespace's); the thread is not given
// back to the Go runtime but ends with f.
func inNetns(ns netns.NsHandle, f func() (string, error)) (string, error) {
	type result struct {
		s   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		if err := netns.Set(ns); err != nil {
			done <- result{err: fmt.Errorf("enter the namespace: %w", err)}
			return
		}
		s, err := f()
		done <- result{s, err}
	}()
	r := <-done
	return r.s, r.err
}

// TestNetworkAutoWithoutNetAdmin runs `berth daemon --network-mode auto`
// without CAP_NET_ADMIN, a real drop: as root, through setpriv with the
// capability taken out of the bounding and inheritable sets (and in a
// network namespace of its own, so a drop that did not happen could
// not touch this host's network); as another user, as it is. The
// daemon's CapEff lacks the capability, and `berth system status` says
// user mode and why. No VM.
func TestNetworkAutoWithoutNetAdmin(t *testing.T) {
	home := shortHome(t)
	cmd := daemonCommand(home, []string{"--network-mode=auto"})
	if os.Geteuid() == 0 {
		setpriv := testenv.RequireCommand(t, "setpriv", "util-linux")
		cmd.Args = append([]string{setpriv, "--bounding-set=-net_admin", "--inh-caps=-net_admin", "--"}, append([]string{cmd.Path}, cmd.Args[1:]...)...)
		cmd.Path = setpriv
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	}
	runDaemon(t, home, cmd)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^CapEff:\s*([0-9a-f]+)$`).FindSubmatch(status); m == nil {
		t.Fatalf("the daemon's /proc/PID/status has no CapEff:\n%s", status)
	} else if eff, err := strconv.ParseUint(string(m[1]), 16, 64); err != nil || eff&(1<<12) != 0 {
		t.Fatalf("the daemon runs with CAP_NET_ADMIN (CapEff %s, %v): the test did not drop it", m[1], err)
	}
	r := mustOK(t, "system status", berth(t, home, "system", "status"))
	want := "chosen: bridge mode needs root or CAP_NET_ADMIN, which the engine has not got"
	if os.Geteuid() == 0 {
		want = "chosen: bridge mode needs CAP_NET_ADMIN, which the engine runs without (as root, with the capability dropped)"
	}
	if !strings.Contains(r.out, "user: rootless: each network is a user-space switch") || !strings.Contains(r.out, want) {
		t.Errorf("berth system status does not say user mode and %q:\n%s", want, r.out)
	}
}
