package engine_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/internal/testenv"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobynetwork "github.com/moby/moby/api/types/network"
)

// BenchmarkNetwork measures Berth's networks in both modes with
// testdata/netbench on both ends: TCP throughput (1 GB to a sink, until
// its "ok") and connection latency (the median of 1000 connects with a
// 1-byte round trip) on the paths netbenchNames lists: host→host on
// loopback (the baseline), host→container through a published port,
// host→container at the container's own address (bridge mode only: in
// user mode the host has no route into the network), and
// container→container on the default network, with two VMs for all of
// it. user/ runs in this process; bridge/ (root only) in a run of this
// test binary in a network namespace of its own (benchNetworkBridge),
// so nothing touches this host's network. Each metric is the median of
// b.N runs. -short: 16 MB and 50 connections, a check of the benchmark,
// not numbers.
func BenchmarkNetwork(b *testing.B) {
	b.Run(engine.NetworkModeUser, func(b *testing.B) { benchNetwork(b, engine.NetworkModeUser) })
	b.Run(engine.NetworkModeBridge, benchNetworkBridge)
}

// netbenchNames are BenchmarkNetwork's sub-benchmarks in mode, in the
// order they run: throughput/PATH and latency/PATH for each path.
func netbenchNames(mode string) []string {
	paths := []string{"host-loopback", "host-to-container-published"}
	if mode == engine.NetworkModeBridge {
		paths = append(paths, "host-to-container-ip")
	}
	paths = append(paths, "container-to-container")
	var names []string
	for _, p := range paths {
		names = append(names, "throughput/"+p, "latency/"+p)
	}
	return names
}

// benchNetwork is BenchmarkNetwork in mode, run in this process (and
// its network namespace).
func benchNetwork(b *testing.B, mode string) {
	size, pings := int64(1_000_000_000), 1000
	if testing.Short() {
		size, pings = 16_000_000, 50
	}
	dir, err := os.MkdirTemp("", "bn")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	hostBin := buildNetbench(b, dir, "")
	guestBin := buildNetbench(b, dir, "linux")
	guest, err := os.ReadFile(guestBin)
	if err != nil {
		b.Fatal(err)
	}
	reg := testenv.StartRegistry(b)
	ref := reg.Push(b, "bench/netbench", "net", testenv.BusyboxImage(b, map[string]string{"bin/netbench": string(guest)}))
	eng, _ := startBenchEngine(b, dir, ref, engine.WithNetworkMode(mode))

	// The host's baseline server, the container's (published), a client container.
	hostSink, hostEcho := benchFreePort(b), benchFreePort(b)
	srv := exec.Command(hostBin, "serve", hostSink, hostEcho)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	pubSink, pubEcho := benchFreePort(b), benchFreePort(b)
	bindings := mobynetwork.PortMap{}
	for ctr, host := range map[string]string{"5001/tcp": pubSink, "5002/tcp": pubEcho} {
		_, port, _ := net.SplitHostPort(host)
		bindings[mobynetwork.MustParsePort(ctr)] = []mobynetwork.PortBinding{{HostPort: port}}
	}
	server := startBenchContainer(b, eng, ref, "chmod +x /bin/netbench && exec netbench serve", bindings)
	client := startBenchContainer(b, eng, ref, "chmod +x /bin/netbench && exec sleep 100000", nil)
	serverIP := snapshotIP(b, eng, server)
	ipSink, ipEcho := net.JoinHostPort(serverIP, "5001"), net.JoinHostPort(serverIP, "5002")
	for _, addr := range []string{hostEcho, pubEcho} {
		waitEcho(b, hostBin, addr)
	}

	onHost := func(args ...string) func(testing.TB) string {
		return func(tb testing.TB) string {
			out, err := exec.Command(hostBin, args...).Output()
			if err != nil {
				tb.Fatalf("netbench %s: %v", strings.Join(args, " "), err)
			}
			return string(out)
		}
	}
	inClient := func(args ...string) func(testing.TB) string {
		return func(tb testing.TB) string {
			return benchExec(tb, eng, client, append([]string{"netbench"}, args...)...)
		}
	}
	n := strconv.FormatInt(size, 10)
	p := strconv.Itoa(pings)
	runs := map[string]func(testing.TB) string{
		"throughput/host-loopback":               onHost("send", hostSink, n),
		"latency/host-loopback":                  onHost("ping", hostEcho, p),
		"throughput/host-to-container-published": onHost("send", pubSink, n),
		"latency/host-to-container-published":    onHost("ping", pubEcho, p),
		"throughput/host-to-container-ip":        onHost("send", ipSink, n),
		"latency/host-to-container-ip":           onHost("ping", ipEcho, p),
		"throughput/container-to-container":      inClient("send", ipSink, n),
		"latency/container-to-container":         inClient("ping", ipEcho, p),
	}
	for _, name := range netbenchNames(mode) {
		run := runs[name]
		b.Run(name, func(b *testing.B) {
			d := medianSeconds(b, run)
			if strings.HasPrefix(name, "throughput/") {
				b.ReportMetric(float64(size)/1e6/d, "MB/s")
			} else {
				b.ReportMetric(d*1e6, "µs")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// medianSeconds runs f b.N times (each prints seconds) and returns the
// median.
func medianSeconds(b *testing.B, f func(testing.TB) string) float64 {
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		s, err := strconv.ParseFloat(strings.TrimSpace(f(b)), 64)
		if err != nil {
			b.Fatalf("netbench printed no seconds: %v", err)
		}
		ds = append(ds, time.Duration(s*float64(time.Second)))
	}
	return median(ds).Seconds()
}

// buildNetbench builds testdata/netbench for goos ("" the host's) into
// dir.
func buildNetbench(tb testing.TB, dir, goos string) string {
	tb.Helper()
	out := filepath.Join(dir, "netbench-"+goos)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/netbench")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if goos != "" {
		cmd.Env = append(cmd.Env, "GOOS="+goos)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build netbench: %v\n%s", err, b)
	}
	return out
}

// benchFreePort is "127.0.0.1:PORT" for a TCP port free a moment ago.
func benchFreePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBenchContainer creates and starts a container running script,
// removed at the end.
func startBenchContainer(tb testing.TB, eng *engine.Engine, ref, script string, ports mobynetwork.PortMap) string {
	tb.Helper()
	ctx := context.Background()
	cm := eng.Containers()
	c, err := cm.Create(ctx, container.CreateRequest{
		Config:     &mobycontainer.Config{Image: ref, Cmd: []string{"sh", "-c", script}},
		HostConfig: &mobycontainer.HostConfig{PortBindings: ports},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cm.Remove(context.Background(), c.ID(), true) })
	if err := cm.Start(ctx, c.ID()); err != nil {
		tb.Fatal(err)
	}
	return c.ID()
}

func snapshotIP(tb testing.TB, eng *engine.Engine, id string) string {
	tb.Helper()
	c, err := eng.Containers().Get(id)
	if err != nil {
		tb.Fatal(err)
	}
	ip := c.Snapshot().State.IPAddress
	if ip == "" {
		tb.Fatalf("container %s has no address", id)
	}
	return ip
}

// waitEcho waits until the echo at addr answers.
func waitEcho(tb testing.TB, bin, addr string) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := exec.Command(bin, "ping", addr, "1").CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("echo at %s did not answer: %v: %s", addr, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// benchExec runs cmd in the container and returns its stdout; a non-zero
// exit fails tb with its stderr.
func benchExec(tb testing.TB, eng *engine.Engine, id string, cmd ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cm := eng.Containers()
	eid, err := cm.CreateExec(ctx, id, container.ExecConfig{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		tb.Fatal(err)
	}
	var out, errb bytes.Buffer
	code, err := cm.StartExec(ctx, eid, agent.Stdio{Stdout: &out, Stderr: &errb})
	if err != nil || code != 0 {
		tb.Fatalf("exec %q: exit %d, %v: %s", cmd, code, err, errb.String())
	}
	return out.String()
}
