package engine_test

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/internal/testenv"
	"github.com/vishvananda/netlink"
)

// benchNetnsEnv marks the run of this test binary that
// benchNetworkBridge starts in a network namespace of its own.
const benchNetnsEnv = "BERTH_BENCH_NETNS"

// benchNetworkBridge is BenchmarkNetwork/bridge. An engine's bridges,
// TAP devices and nftables rules are its network namespace's, and a Go
// process cannot move all its threads into another one, so this test
// binary runs itself again (just this benchmark, with this run's
// -benchtime, -count, -short and -timeout) in a new network namespace, where it
// brings loopback up and runs benchNetwork in bridge mode; here each of
// its sub-benchmarks reports what that run measured, in netbenchNames'
// order. Bridge mode needs root.
func benchNetworkBridge(b *testing.B) {
	if os.Getenv(benchNetnsEnv) != "" {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			b.Fatalf("bring loopback up in the benchmark's network namespace: %v", err)
		}
		benchNetwork(b, engine.NetworkModeBridge)
		return
	}
	testenv.RequireRoot(b, "BenchmarkNetwork/bridge (bridges, TAP devices and nftables in a network namespace of its own)")

	args := []string{"-test.run=^$", "-test.bench=^BenchmarkNetwork$/^bridge$",
		"-test.benchtime=" + flag.Lookup("test.benchtime").Value.String(),
		"-test.timeout=" + flag.Lookup("test.timeout").Value.String(),
		"-test.count=" + flag.Lookup("test.count").Value.String()}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), benchNetnsEnv+"=1")
	// Pdeathsig fires when the thread that started the child ends:
	// this goroutine keeps its thread until the child is waited for.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("run BenchmarkNetwork/bridge in a network namespace: %v", err)
	}
	results := make(chan benchResult)
	var rest bytes.Buffer // the child's other output, for its failure
	go func() {
		defer close(results)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if r, ok := parseBenchResult(sc.Text(), b.Name()+"/"); ok {
				results <- r
			} else {
				rest.WriteString(sc.Text() + "\n")
			}
		}
	}()
	var waited bool
	var waitErr error
	wait := func() error { // the child's output to its end, then its exit
		if !waited {
			for range results {
			}
			waited, waitErr = true, cmd.Wait()
		}
		return waitErr
	}
	defer func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = wait()
		}
	}()
	for _, name := range netbenchNames(engine.NetworkModeBridge) {
		var got *benchResult
		b.Run(name, func(b *testing.B) {
			// Each of -count's runs starts with b.N == 1 and has a
			// line of its own; -benchtime's longer runs after it
			// repeat that line.
			if got == nil || b.N == 1 {
				r, ok := <-results
				if !ok {
					b.Fatalf("the run in a network namespace ended before %s: %v\n%s", name, wait(), rest.String())
				}
				if r.name != name {
					b.Fatalf("the run in a network namespace reported %s, not %s", r.name, name)
				}
				got = &r
			}
			for _, m := range got.metrics {
				b.ReportMetric(m.value, m.unit)
			}
			b.ReportMetric(0, "ns/op") // this run's time is the wait, not the measure
		})
	}
	if err := wait(); err != nil {
		b.Fatalf("the run in a network namespace: %v\n%s", err, rest.String())
	}
}

// benchResult is one result line of a benchmark run: the name under
// its parent and its metrics.
type benchResult struct {
	name    string
	metrics []struct {
		value float64
		unit  string
	}
}

// procsSuffix is the -GOMAXPROCS a benchmark's name ends in.
var procsSuffix = regexp.MustCompile(`-[0-9]+$`)

// parseBenchResult parses a result line of a sub-benchmark of parent
// ("Benchmark.../"): "NAME-PROCS  N  VALUE UNIT  VALUE UNIT ...".
func parseBenchResult(line, parent string) (benchResult, bool) {
	i := strings.Index(line, parent)
	if i < 0 {
		return benchResult{}, false
	}
	f := strings.Fields(line[i+len(parent):])
	if len(f) < 4 || len(f)%2 != 0 {
		return benchResult{}, false
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return benchResult{}, false
	}
	r := benchResult{name: procsSuffix.ReplaceAllString(f[0], "")}
	for j := 2; j < len(f); j += 2 {
		v, err := strconv.ParseFloat(f[j], 64)
		if err != nil {
			return benchResult{}, false
		}
		r.metrics = append(r.metrics, struct {
			value float64
			unit  string
		}{v, f[j+1]})
	}
	return r, true
}
