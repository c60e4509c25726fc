// Command berth-top is Berth's example plugin: `berth top` shows a live
// table of the running containers with their CPU and memory use, from
// the engine's Docker API (the stats endpoint) through the socket Berth
// names in $BERTH_SOCKET. `berth top --once` prints one snapshot and
// exits (what scripts and tests use).
//
// It answers `berth-top berth-plugin-metadata` with its metadata, so it
// needs no berth-top.json beside it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/berthvm/berth/app/internal/human"
	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/plugin"
	mobycontainer "github.com/moby/moby/api/types/container"
	docker "github.com/moby/moby/client"
)

// metadata is what berth-plugin-metadata prints.
var metadata = plugin.Metadata{
	Description: "Live table of running containers with their CPU and memory",
	Version:     "1.0.0",
	Vendor:      "Berth",
	Kind:        plugin.KindCLI,
	Menu:        []plugin.MenuEntry{{Title: "Container Activity (top)"}},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, out, errw io.Writer) int {
	if len(args) == 1 && args[0] == plugin.MetadataArg {
		if err := json.NewEncoder(out).Encode(metadata); err != nil {
			return 1
		}
		return 0
	}
	fs := flag.NewFlagSet("berth top", flag.ContinueOnError)
	fs.SetOutput(errw)
	once := fs.Bool("once", false, "print one snapshot and exit")
	interval := fs.Duration("interval", 2*time.Second, "time between refreshes (and the CPU sampling window)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *interval < 100*time.Millisecond {
		fmt.Fprintln(errw, "berth top: --interval must be at least 100ms")
		return 2
	}
	sock := os.Getenv(plugin.EnvSocket)
	if sock == "" {
		h, err := home.Resolve("")
		if err != nil {
			fmt.Fprintf(errw, "berth top: %v\n", err)
			return 1
		}
		sock = h.Socket()
	}
	cl, err := client.New(sock)
	if err != nil {
		fmt.Fprintf(errw, "berth top: %v\n", err)
		return 1
	}
	defer cl.Close()
	if err := top(ctx, cl, out, *once, *interval); err != nil {
		if nr := client.NotRunning(err); nr != nil {
			err = nr
		}
		fmt.Fprintf(errw, "berth top: %v\n", err)
		return 1
	}
	return 0
}

// sample is one container's stats at one moment.
type sample struct {
	id, name    string
	cpu         uint64 // cumulative CPU time, ns
	at          time.Time
	mem, memMax uint64
	pids        uint64
}

// top prints the table: once (two samples interval/4 apart, for CPU %),
// or every interval until ctx is done.
func top(ctx context.Context, cl *client.Client, out io.Writer, once bool, interval time.Duration) error {
	prev, err := samples(ctx, cl)
	if err != nil {
		return err
	}
	wait := interval
	if once {
		wait = interval / 4
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		cur, err := samples(ctx, cl)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !once {
			fmt.Fprint(out, "\033[H\033[2J")
		}
		if err := printTable(out, prev, cur); err != nil || once {
			return err
		}
		prev = cur
	}
}

// samples reads the stats of every running container.
func samples(ctx context.Context, cl *client.Client) (map[string]sample, error) {
	res, err := cl.ContainerList(ctx, docker.ContainerListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := map[string]sample{}
	for _, c := range res.Items {
		r, err := cl.ContainerStats(ctx, c.ID, docker.ContainerStatsOptions{})
		if err != nil {
			continue // it stopped between the list and now
		}
		var st mobycontainer.StatsResponse
		err = json.NewDecoder(r.Body).Decode(&st)
		r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("stats of %s: %w", c.ID, err)
		}
		name := st.Name
		if name == "" && len(c.Names) > 0 {
			name = c.Names[0]
		}
		out[c.ID] = sample{id: c.ID, name: strings.TrimPrefix(name, "/"), cpu: st.CPUStats.CPUUsage.TotalUsage, at: time.Now(),
			mem: st.MemoryStats.Usage, memMax: st.MemoryStats.Limit, pids: st.PidsStats.Current}
	}
	return out, nil
}

// printTable writes the table of cur, with CPU % from prev, busiest first.
func printTable(out io.Writer, prev, cur map[string]sample) error {
	rows := make([]sample, 0, len(cur))
	for _, s := range cur {
		rows = append(rows, s)
	}
	pct := func(s sample) float64 {
		p, ok := prev[s.id]
		if !ok || !s.at.After(p.at) || s.cpu < p.cpu {
			return 0
		}
		return 100 * float64(s.cpu-p.cpu) / float64(s.at.Sub(p.at).Nanoseconds())
	}
	sort.Slice(rows, func(i, j int) bool {
		if a, b := pct(rows[i]), pct(rows[j]); a != b {
			return a > b
		}
		return rows[i].name < rows[j].name
	})
	w := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, "CONTAINER ID\tNAME\tCPU %\tCPU TIME\tMEM USAGE / LIMIT\tMEM %\tPIDS")
	for _, s := range rows {
		memPct := 0.0
		if s.memMax > 0 {
			memPct = 100 * float64(s.mem) / float64(s.memMax)
		}
		fmt.Fprintf(w, "%s\t%s\t%.1f%%\t%s\t%s / %s\t%.1f%%\t%d\n", human.ShortID(s.id), s.name, pct(s),
			time.Duration(s.cpu).Round(time.Millisecond), human.Bytes(int64(s.mem)), human.Bytes(int64(s.memMax)), memPct, s.pids)
	}
	return w.Flush()
}
