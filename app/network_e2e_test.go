package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNetworkUserMode boots real VMs on the default user-mode network:
// a container publishes busybox httpd on a host port the host reaches;
// inspect and ps show its own address and the port; publishing a host
// port in use fails naming the port, without starting the container; a
// second container reaches the first by IP and the host through the
// host's own (non-loopback) address, but not the host's loopback
// services, by any address (the gateway, the host alias that the opt-in
// would use, QEMU's old 10.0.2.2).
func TestNetworkUserMode(t *testing.T) {
	home, ref := imageFixtureWith(t, map[string]string{"bin/udpecho": buildUDPEcho(t)})
	secretPort := serveSecret(t, "127.0.0.1:0")
	hostIP := outsideIPv4(t)
	outsideURL, outsidePort := "", ""
	if hostIP != "" {
		outsideURL = serveHTTP(t, net.JoinHostPort(hostIP, "0"), "outside-ok\n")
		outsidePort = outsideURL[strings.LastIndex(outsideURL, ":")+1 : len(outsideURL)-1]
	} else {
		t.Log("this host has no non-loopback IPv4 address: outbound to the host's network is not checked")
	}

	hostPort, udpPort := freePort(t), freeUDPPort(t)
	mustOK(t, "run -d web", berth(t, home, "run", "-d", "--name", "web", "-p", fmt.Sprintf("127.0.0.1:%d:80", hostPort),
		"-p", fmt.Sprintf("%d:80/udp", hostPort), "-p", fmt.Sprintf("%d:53/udp", udpPort), ref,
		"sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && busybox httpd -p 80 -h /www && chmod +x /bin/udpecho && exec udpecho 80 53"))

	// The published ports, from the host: tcp, and udp on the same host
	// port number and on another.
	if body := getRetry(t, fmt.Sprintf("http://127.0.0.1:%d/", hostPort), 60*time.Second); body != "hello-from-web\n" {
		t.Fatalf("published port answered %q", body)
	}
	for _, p := range []int{hostPort, udpPort} {
		if got := udpEcho(t, fmt.Sprintf("127.0.0.1:%d", p), "ping", 20*time.Second); got != "echo:ping" {
			t.Fatalf("published udp port %d answered %q", p, got)
		}
	}

	// inspect and ps: the container's own address and its port.
	r := mustOK(t, "inspect web", berth(t, home, "inspect", "web"))
	var insp []struct {
		NetworkSettings struct {
			IPAddress string
			Ports     map[string][]struct{ HostIp, HostPort string }
		}
	}
	if err := json.Unmarshal([]byte(r.out), &insp); err != nil || len(insp) != 1 {
		t.Fatalf("inspect: %v\n%s", err, r.out)
	}
	webIP := insp[0].NetworkSettings.IPAddress
	if !strings.HasPrefix(webIP, "192.168.127.") {
		t.Fatalf("web's address %q is not on the default network 192.168.127.0/24", webIP)
	}
	for port, hp := range map[string]int{"80/tcp": hostPort, "80/udp": hostPort, "53/udp": udpPort} {
		if b := insp[0].NetworkSettings.Ports[port]; len(b) != 1 || b[0].HostIp != "127.0.0.1" || b[0].HostPort != strconv.Itoa(hp) {
			t.Fatalf("inspect ports %s: %+v", port, insp[0].NetworkSettings.Ports)
		}
	}
	r = mustOK(t, "ps", berth(t, home, "ps"))
	for _, want := range []string{fmt.Sprintf("127.0.0.1:%d->80/tcp", hostPort), fmt.Sprintf("127.0.0.1:%d->80/udp", hostPort), webIP} {
		if !strings.Contains(r.out, want) {
			t.Fatalf("ps lacks %s:\n%s", want, r.out)
		}
	}

	// A host port in use: a clear error naming it; the container does not start.
	r = berth(t, home, "run", "--name", "clash", "-p", fmt.Sprintf("127.0.0.1:%d:80", hostPort), ref, "true")
	if r.code == 0 || !strings.Contains(r.err, fmt.Sprintf("host port %d on 127.0.0.1:%d is already in use by Berth itself (another container publishes it)", hostPort, hostPort)) {
		t.Fatalf("publishing a port in use: %+v", r)
	}
	r = mustOK(t, "inspect clash", berth(t, home, "inspect", "clash"))
	var clash []struct{ State struct{ Status string } }
	if err := json.Unmarshal([]byte(r.out), &clash); err != nil || len(clash) != 1 || clash[0].State.Status == "running" {
		t.Fatalf("clash after its port could not be published: %v %s", err, r.out)
	}
	mustOK(t, "rm clash", berth(t, home, "rm", "clash"))
	r = berth(t, home, "run", "--name", "clash-udp", "-p", fmt.Sprintf("%d:53/udp", udpPort), ref, "true")
	if r.code == 0 || !strings.Contains(r.err, fmt.Sprintf("host port %d on 127.0.0.1:%d is already in use by Berth itself", udpPort, udpPort)) {
		t.Fatalf("publishing a udp port in use: %+v", r)
	}
	mustOK(t, "rm clash-udp", berth(t, home, "rm", "clash-udp"))

	// A second container: web by IP, the host's network, not the host's loopback.
	// HTTP by hand over nc: the image's static busybox wget crashes in
	// glibc's resolver (static NSS), even for a numeric address.
	get := "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 10 %s %s; echo; "
	script := fmt.Sprintf(get, webIP, "80")
	if outsideURL != "" {
		script += fmt.Sprintf(get, hostIP, outsidePort)
	}
	for _, a := range []string{"192.168.127.1", "192.168.127.254", "10.0.2.2"} {
		script += fmt.Sprintf("busybox nc -w 3 %s %d </dev/null; ", a, secretPort)
	}
	script += "ip -4 -o addr show eth0"
	r = berth(t, home, "run", "--rm", ref, "sh", "-c", script)
	t.Logf("second container:\n%s%s", r.out, r.err)
	if !strings.Contains(r.out, "hello-from-web") {
		t.Errorf("the second container did not reach web at %s", webIP)
	}
	if outsideURL != "" && !strings.Contains(r.out, "outside-ok") {
		t.Errorf("the second container did not reach the host at %s", outsideURL)
	}
	if strings.Contains(r.out, "loopback-secret") {
		t.Errorf("a container reached a service on the host's loopback")
	}
	if !strings.Contains(r.out, "inet 192.168.127.") || strings.Contains(r.out, "inet "+webIP+"/") {
		t.Errorf("the second container's address is not its own on 192.168.127.0/24")
	}
}

// TestNetworkHostLoopbackOptIn: with `berth daemon --host-loopback` a
// container reaches the host's loopback services at the host alias
// 192.168.127.254 (and still not through the gateway).
func TestNetworkHostLoopbackOptIn(t *testing.T) {
	_, ref := imageFixture(t)
	home := shortHome(t)
	startDaemonWith(t, home, nil, []string{"--host-loopback"})
	secretPort := serveSecret(t, "127.0.0.1:0")
	r := berth(t, home, "run", "--rm", ref, "sh", "-c",
		fmt.Sprintf("echo alias: $(busybox nc -w 3 192.168.127.254 %d </dev/null); echo gateway: $(busybox nc -w 3 192.168.127.1 %d </dev/null)", secretPort, secretPort))
	if r.code != 0 || !strings.Contains(r.out, "alias: loopback-secret") || strings.Contains(r.out, "gateway: loopback-secret") {
		t.Fatalf("with --host-loopback: %+v", r)
	}
}

// serveSecret listens on addr and writes "loopback-secret" to every
// connection; it returns the port.
func serveSecret(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	answerEach(t, ln, func(net.Conn) string { return "loopback-secret" })
	return ln.Addr().(*net.TCPAddr).Port
}

// answerEach accepts connections on ln until the test ends, writing the
// line answer gives for each and closing it.
func answerEach(t *testing.T, ln net.Listener, answer func(net.Conn) string) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, answer(c)+"\n")
			c.Close()
		}
	}()
}

// serveHTTP serves body on addr and returns its URL.
func serveHTTP(t *testing.T, addr, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// outsideIPv4 is one of the host's non-loopback IPv4 addresses, "" when
// it has none.
func outsideIPv4(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// freePort is a TCP port free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// freeUDPPort is a UDP port free on 127.0.0.1 a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// udpEcho sends msg to addr once a second until an answer comes or
// limit passes, and returns the answer.
func udpEcho(t *testing.T, addr, msg string, limit time.Duration) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	var last error
	for end := time.Now().Add(limit); time.Now().Before(end); {
		if _, err := c.Write([]byte(msg)); err != nil {
			last = err
			time.Sleep(time.Second)
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n])
		}
		last = err
	}
	t.Fatalf("no udp answer from %s within %s: %v", addr, limit, last)
	return ""
}

// buildUDPEcho builds testdata/udpecho, a UDP echo server (the busybox
// image has none), for the guest, and returns the binary's content.
func buildUDPEcho(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "udpecho")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/udpecho")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build udpecho: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// getRetry GETs url until it answers 200 or limit passes.
func getRetry(t *testing.T, url string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	cl := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := cl.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestNetworkNamesAndNetworks drives user-defined networks and names
// with the real docker CLI and berth's, on four VMs: `berth network
// create` with a subnet, an overlapping one refused; `docker network
// create` with a label, ls with a filter; a server on that network with
// an alias; a client on the same network (berth run) that resolves it by
// name and alias (busybox nslookup asks the network's resolver, which
// resolv.conf names) and fetches from it by name, resolves
// host.docker.internal to the network's host alias, and gets --add-host,
// --dns (noted as the resolver's upstream), --dns-search and --hostname;
// a client on the default network that neither resolves the server's
// name nor reaches its address; a --network none container with
// loopback only; `docker network rm` refused with Docker's text while
// the server runs, then done; and berth system status naming the mode.
func TestNetworkNamesAndNetworks(t *testing.T) {
	home, ref := imageFixture(t)
	r := mustOK(t, "network create", docker(t, home, "network", "create", "--label", "suite=names", "front"))
	frontID := strings.TrimSpace(r.out)
	// berth network: a subnet given, an overlapping one refused naming
	// the network it overlaps.
	mustOK(t, "berth network create", berth(t, home, "network", "create", "--subnet", "10.99.0.0/24", "back"))
	r = berth(t, home, "network", "create", "--subnet", "10.99.0.128/25", "clash")
	if r.code == 0 || !strings.Contains(r.err, "Pool overlaps with other one on this address space (subnet 10.99.0.128/25 overlaps network back's 10.99.0.0/24)") {
		t.Fatalf("berth network create with an overlapping subnet: %+v", r)
	}
	r = mustOK(t, "berth network ls", berth(t, home, "network", "ls"))
	if !regexp.MustCompile(`back\s+10\.99\.0\.0/24`).MatchString(r.out) {
		t.Fatalf("berth network ls:\n%s", r.out)
	}
	mustOK(t, "berth network rm", berth(t, home, "network", "rm", "back"))
	r = mustOK(t, "network ls", docker(t, home, "network", "ls", "--filter", "label=suite=names", "--format", "{{.ID}} {{.Name}} {{.Driver}}"))
	if strings.TrimSpace(r.out) != frontID[:12]+" front bridge" {
		t.Fatalf("docker network ls: %q", r.out)
	}
	r = mustOK(t, "network inspect", docker(t, home, "network", "inspect", "--format", "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}", "front"))
	subnet, gateway, _ := strings.Cut(strings.TrimSpace(r.out), " ")
	if subnet != "192.168.128.0/24" || gateway != "192.168.128.1" {
		t.Fatalf("docker network inspect front: %q", r.out)
	}

	// api publishes its --expose 80 with -P (a free host port) and 81 on
	// a host range (the first free port of it).
	rangeLo := freePort(t)
	hostRange := fmt.Sprintf("%d-%d", rangeLo, rangeLo+9)
	mustOK(t, "run api", docker(t, home, "run", "-d", "--name", "api", "--network", "front", "--network-alias", "backend",
		"--expose", "80", "-P", "-p", "127.0.0.1:"+hostRange+":81", ref,
		"sh", "-c", "mkdir -p /www && echo hello-from-api > /www/index.html && exec busybox httpd -f -p 80 -h /www"))
	r = mustOK(t, "inspect api", docker(t, home, "inspect", "--format", "{{with .NetworkSettings.Networks.front}}{{.IPAddress}} {{.Aliases}} {{.Gateway}}/{{.IPPrefixLen}}{{end}}", "api"))
	apiIP, rest, _ := strings.Cut(strings.TrimSpace(r.out), " ")
	if !strings.HasPrefix(apiIP, "192.168.128.") || rest != "[backend] 192.168.128.1/24" {
		t.Fatalf("docker inspect api: %q", r.out)
	}
	r = mustOK(t, "inspect api ports", docker(t, home, "inspect", "--format", "{{json .HostConfig.PortBindings}} {{json .Config.ExposedPorts}} {{.HostConfig.PublishAllPorts}}", "api"))
	if want := `{"81/tcp":[{"HostIp":"127.0.0.1","HostPort":"` + hostRange + `"}]} {"80/tcp":{},"81/tcp":{}} true`; strings.TrimSpace(r.out) != want {
		t.Fatalf("docker inspect api's ports: %q, want %q", r.out, want)
	}
	r = mustOK(t, "docker port", docker(t, home, "port", "api"))
	m := regexp.MustCompile(`^80/tcp -> 127\.0\.0\.1:(\d+)\n81/tcp -> 127\.0\.0\.1:(\d+)\n$`).FindStringSubmatch(r.out)
	if m == nil {
		t.Fatalf("docker port api:\n%s", r.out)
	}
	if p81, _ := strconv.Atoi(m[2]); p81 < rangeLo || p81 > rangeLo+9 {
		t.Errorf("81 published on %d, outside %s", p81, hostRange)
	}
	r = mustOK(t, "docker port api 80", docker(t, home, "port", "api", "80"))
	if strings.TrimSpace(r.out) != "127.0.0.1:"+m[1] {
		t.Errorf("docker port api 80: %q, want 127.0.0.1:%s", r.out, m[1])
	}
	r = mustOK(t, "berth port api 80/tcp", berth(t, home, "port", "api", "80/tcp"))
	if strings.TrimSpace(r.out) != "127.0.0.1:"+m[1] {
		t.Errorf("berth port api 80/tcp: %q, want 127.0.0.1:%s", r.out, m[1])
	}
	if r = berth(t, home, "port", "api", "53/udp"); r.code == 0 || !strings.Contains(r.err, "no public port '53/udp' published for api") {
		t.Errorf("berth port api 53/udp: %+v", r)
	}
	if body := getRetry(t, "http://127.0.0.1:"+m[1]+"/", 60*time.Second); body != "hello-from-api\n" {
		t.Errorf("api's -P port answered %q", body)
	}
	r = docker(t, home, "network", "rm", "front")
	if r.code == 0 || !strings.Contains(r.err, "error while removing network: network front id "+frontID+" has active endpoints") {
		t.Fatalf("docker network rm front while api runs: %+v", r)
	}

	// The client on front. The image's static busybox crashes in glibc's
	// resolver (wget NAME), so names are resolved with nslookup, which
	// asks resolv.conf's nameserver itself, and fetched over nc.
	// busybox's nslookup tries a dotless name under each search domain
	// only (no ndots), so names end in a dot.
	addr := `busybox nslookup %[1]s. 2>&1 | awk '/^Name:/ {n=1} n && /^Address/ {print $NF; exit}'`
	script := `echo api=$(` + fmt.Sprintf(addr, "api") + `); echo backend=$(` + fmt.Sprintf(addr, "backend") + `); ` +
		`echo host=$(` + fmt.Sprintf(addr, "host.docker.internal") + `); ` +
		`printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 10 $(` + fmt.Sprintf(addr, "api") + `) 80; ` +
		`echo hostname=$(hostname); cat /etc/resolv.conf /etc/hosts`
	r = berth(t, home, "run", "--rm", "--network", "front", "--hostname", "probe", "--add-host", "extra.test:10.1.2.3",
		"--dns", "192.0.2.53", "--dns-search", "example.test", ref, "sh", "-c", script)
	t.Logf("client on front:\n%s%s", r.out, r.err)
	for _, want := range []string{
		"api=" + apiIP + "\n", "backend=" + apiIP + "\n", "host=192.168.128.254\n", "hello-from-api", "hostname=probe\n",
		"nameserver 192.168.128.1\n", "search example.test\n", "options ndots:0\n", "ExtServers: [192.0.2.53]", "10.1.2.3\textra.test\n",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("the client on front: no %q in its output", want)
		}
	}

	// The client on the default network: api's name is not its network's,
	// and api's address is on another switch, which the default
	// network's forwarders refuse (connection refused, at once).
	script = `echo api=$(` + fmt.Sprintf(addr, "api") + `); ` +
		`printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 5 ` + apiIP + ` 80; echo nc-exit=$?`
	r = docker(t, home, "run", "--rm", ref, "sh", "-c", script)
	t.Logf("client on the default network:\n%s%s", r.out, r.err)
	if !strings.Contains(r.out, "api=\n") || strings.Contains(r.out, "hello-from-api") || !strings.Contains(r.out+r.err, "Connection refused") {
		t.Errorf("a container on the default network resolved or reached api on front")
	}

	// --network none: a VM without a NIC, loopback only.
	r = mustOK(t, "run --network none", docker(t, home, "run", "--rm", "--network", "none", ref, "sh", "-c", "ip -o link | awk '{print $2}'"))
	if strings.TrimSpace(r.out) != "lo:" {
		t.Errorf("--network none: links %q, want lo only", r.out)
	}

	testConnectDisconnect(t, home, ref)

	r = mustOK(t, "system status", berth(t, home, "system", "status"))
	if !strings.Contains(r.out, "Network:") || !strings.Contains(r.out, "user: rootless") {
		t.Errorf("berth system status does not say the network mode:\n%s", r.out)
	}
	mustOK(t, "rm api", docker(t, home, "rm", "-f", "api"))
	mustOK(t, "network rm", docker(t, home, "network", "rm", "front"))
	r = mustOK(t, "network ls", docker(t, home, "network", "ls", "--format", "{{.Name}}"))
	if strings.TrimSpace(r.out) != "bridge" {
		t.Fatalf("docker network ls after rm: %q", r.out)
	}
}

// testConnectDisconnect drives docker network connect and disconnect
// (on the daemon of TestNetworkNamesAndNetworks, whose network front
// exists): a container created on the default network is refused a
// second network, is disconnected (inspect shows no network; it starts
// with loopback only), connected to quiet, an --internal network, with
// an alias (it starts with an address on quiet, which lists it, and
// does not reach the host's network), and, while it runs, is refused a
// disconnect with what to do.
func testConnectDisconnect(t *testing.T, home, ref string) {
	t.Helper()
	outside := ""
	if hostIP := outsideIPv4(t); hostIP != "" {
		u := serveHTTP(t, net.JoinHostPort(hostIP, "0"), "outside-ok\n")
		outside = hostIP + " " + u[strings.LastIndex(u, ":")+1:len(u)-1]
	} else {
		t.Log("this host has no non-loopback IPv4 address: an internal network's outbound is not checked")
	}
	mustOK(t, "network create --internal", berth(t, home, "network", "create", "--internal", "--subnet", "10.98.0.0/24", "quiet"))
	r := mustOK(t, "network inspect quiet", docker(t, home, "network", "inspect", "--format", "{{.Internal}}", "quiet"))
	if strings.TrimSpace(r.out) != "true" {
		t.Errorf("docker network inspect quiet: Internal %q", r.out)
	}
	script := `ip -4 -o addr show eth0 2>/dev/null | awk '{print "eth0=" $4}'; ip -o link | awk '{print "link=" $2}'; `
	if outside != "" {
		script += `[ -e /sys/class/net/eth0 ] && { printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 5 ` + outside + ` 2>&1; echo outside-done; }; `
	}
	script += `exec sleep 60`
	mustOK(t, "create mover", docker(t, home, "create", "--name", "mover", ref, "sh", "-c", script))
	r = docker(t, home, "network", "connect", "front", "mover")
	if r.code == 0 || !strings.Contains(r.err, "a Berth container is on one network (its VM has one NIC) and this one is on bridge: disconnect it from bridge first") {
		t.Fatalf("docker network connect front to a container on bridge: %+v", r)
	}
	mustOK(t, "berth network disconnect bridge", berth(t, home, "network", "disconnect", "bridge", "mover"))
	r = mustOK(t, "inspect mover", docker(t, home, "inspect", "--format", "{{json .NetworkSettings.Networks}}", "mover"))
	if strings.TrimSpace(r.out) != "{}" {
		t.Errorf("inspect after disconnect: %q, want no network", r.out)
	}
	if r = docker(t, home, "network", "disconnect", "bridge", "mover"); r.code == 0 || !strings.Contains(r.err, "is not connected to network bridge") {
		t.Errorf("a second disconnect: %+v", r)
	}
	// Started disconnected: loopback only.
	mustOK(t, "start mover", docker(t, home, "start", "mover"))
	waitInspect(t, home, "mover", "{{.State.Running}}", "true")
	r = mustOK(t, "logs mover", docker(t, home, "logs", "mover"))
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(r.out, "link=") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		r = mustOK(t, "logs mover", docker(t, home, "logs", "mover"))
	}
	if strings.TrimSpace(r.out) != "link=lo:" {
		t.Errorf("the disconnected container's links: %q, want lo only", r.out)
	}
	// Running: neither connect nor disconnect, with what to do.
	if r = docker(t, home, "network", "connect", "front", "mover"); r.code == 0 || !strings.Contains(r.err, "the container is running, and its VM's NIC cannot change while it runs") || !strings.Contains(r.err, "stop it, connect it, and start it again") {
		t.Errorf("connect a running container: %+v", r)
	}
	mustOK(t, "kill mover", docker(t, home, "kill", "mover"))
	waitInspect(t, home, "mover", "{{.State.Running}}", "false")

	// --ip: refused on the default network, outside the subnet (at the
	// start, before a VM boots), taken on connect.
	if r = docker(t, home, "create", "--ip", "10.98.0.9", ref, "true"); r.code == 0 || !strings.Contains(r.err, "user specified IP address is supported on user defined networks only") {
		t.Errorf("--ip on the default network: %+v", r)
	}
	if r = docker(t, home, "run", "--rm", "--network", "quiet", "--ip", "10.97.0.9", ref, "true"); r.code == 0 || !strings.Contains(r.err, "address 10.97.0.9: it is not a host address of the network's subnet 10.98.0.0/24") {
		t.Errorf("--ip outside the subnet: %+v", r)
	}
	mustOK(t, "connect quiet", docker(t, home, "network", "connect", "--alias", "mv", "--ip", "10.98.0.77", "quiet", "mover"))
	r = mustOK(t, "inspect mover", docker(t, home, "inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.Aliases}}{{end}}", "mover"))
	if strings.TrimSpace(r.out) != "quiet [mv]" {
		t.Errorf("inspect after connect: %q, want quiet [mv]", r.out)
	}
	mustOK(t, "start mover", docker(t, home, "start", "mover"))
	waitInspect(t, home, "mover", "{{.State.Running}}", "true")
	r = mustOK(t, "network inspect quiet", docker(t, home, "network", "inspect", "--format", "{{range .Containers}}{{.Name}}={{.IPv4Address}} {{end}}", "quiet"))
	var addr string
	for _, ep := range strings.Fields(r.out) {
		if a, ok := strings.CutPrefix(ep, "mover="); ok {
			addr = a
		}
	}
	if addr != "10.98.0.77/24" {
		t.Errorf("quiet's endpoints: %q, want mover at 10.98.0.77/24 (--ip)", r.out)
	}
	r = mustOK(t, "logs mover", docker(t, home, "logs", "mover"))
	for !strings.Contains(r.out, "eth0=") || (outside != "" && !strings.Contains(r.out, "outside-done")) {
		if time.Now().After(deadline.Add(30 * time.Second)) {
			break
		}
		time.Sleep(200 * time.Millisecond)
		r = mustOK(t, "logs mover", docker(t, home, "logs", "mover"))
	}
	if !strings.Contains(r.out, "eth0="+addr) {
		t.Errorf("the connected container's output: %q, want eth0=%s", r.out, addr)
	}
	if outside != "" && (strings.Contains(r.out, "outside-ok") || !strings.Contains(r.out, "Connection refused")) {
		t.Errorf("a container on an internal network reached, or was not refused, the host's network at %s: %q", outside, r.out)
	}
	if r = docker(t, home, "network", "disconnect", "quiet", "mover"); r.code == 0 || !strings.Contains(r.err, "stop it, disconnect it, and start it again") {
		t.Errorf("disconnect a running container: %+v", r)
	}
	mustOK(t, "rm mover", docker(t, home, "rm", "-f", "mover"))
	mustOK(t, "network rm quiet", docker(t, home, "network", "rm", "quiet"))
}
