//go:build unix

package plugin

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/events"
	mobyevents "github.com/moby/moby/api/types/events"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readLines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Fields(string(b))
}

func newTestSupervisor(t *testing.T, home string) *Supervisor {
	return NewSupervisor(SupervisorConfig{HomeDir: home, Socket: filepath.Join(home, "berth.sock"), LogDir: filepath.Join(home, "logs", "plugins"),
		Grace: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
}

func TestServiceEngineLifecycle(t *testing.T) {
	home, dir := privateDir(t), privateDir(t)
	marks := filepath.Join(dir, "marks")
	writePlugin(t, dir, "svc", `echo "start $BERTH_PLUGIN_NAME $BERTH_SOCKET" >> `+marks+`
echo "to the log"
trap 'echo term >> `+marks+`; exit 0' TERM
while :; do sleep 0.05; done`, `{"description":"x","kind":"service"}`)
	// A service that ignores SIGTERM is killed after the grace.
	writePlugin(t, dir, "stubborn", `trap '' TERM; echo up >> `+marks+`.stubborn; while :; do sleep 0.05; done`, `{"description":"x","kind":"service","lifecycle":"engine"}`)
	writePlugin(t, dir, "clitool", "echo never >> "+marks, `{"description":"not a service"}`)
	s := newTestSupervisor(t, home)
	s.Run(Config{Path: dir}, events.NewBus(), func() []string { return nil })
	waitFor(t, "both services to start", 10*time.Second, func() bool {
		return len(readLines(marks)) >= 3 && len(readLines(marks+".stubborn")) >= 1
	})
	if got := strings.Join(readLines(marks), " "); got != "start svc "+filepath.Join(home, "berth.sock") {
		t.Errorf("marks = %q", got)
	}
	start := time.Now()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	if got := readLines(marks); !slices.Contains(got, "term") || slices.Contains(got, "never") {
		t.Errorf("marks after shutdown = %q, want term and no CLI plugin run", got)
	}
	if b, _ := os.ReadFile(filepath.Join(home, "logs", "plugins", "svc.log")); !strings.Contains(string(b), "to the log") {
		t.Errorf("svc.log = %q", b)
	}
	if len(s.Running()) != 0 {
		t.Errorf("still running: %v", s.Running())
	}
}

func TestServiceCrashRestartBackoff(t *testing.T) {
	home, dir := privateDir(t), privateDir(t)
	starts := filepath.Join(dir, "starts")
	writePlugin(t, dir, "crashy", `date +%s%N >> `+starts+`; exit 1`, `{"description":"x","kind":"service"}`)
	s := newTestSupervisor(t, home)
	s.Run(Config{Path: dir}, events.NewBus(), func() []string { return nil })
	waitFor(t, "five starts", 10*time.Second, func() bool { return len(readLines(starts)) >= 5 })
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ts []int64
	for _, l := range readLines(starts) {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, n)
	}
	// Waits of 50, 100, 200 (the cap), 200 ms: each gap at least that.
	for i, want := range []time.Duration{50, 100, 200, 200} {
		if gap := time.Duration(ts[i+1] - ts[i]); gap < want*time.Millisecond {
			t.Errorf("gap %d = %s, want at least %dms", i+1, gap, want)
		}
	}
	if gap := time.Duration(ts[4] - ts[3]); gap > 2*time.Second {
		t.Errorf("gap 4 = %s: the backoff was not capped", gap)
	}
}

func TestServiceContainerLifecycle(t *testing.T) {
	home, dir := privateDir(t), privateDir(t)
	marks := filepath.Join(dir, "marks")
	writePlugin(t, dir, "sidecar", `echo "start $BERTH_CONTAINER_ID" >> `+marks+`
trap 'echo "stop $BERTH_CONTAINER_ID" >> `+marks+`; exit 0' TERM
while :; do sleep 0.05; done`, `{"description":"x","kind":"service","lifecycle":"container"}`)
	bus := events.NewBus()
	s := newTestSupervisor(t, home)
	s.Run(Config{Path: dir}, bus, func() []string { return []string{"c1"} })
	waitFor(t, "the sidecar of c1", 10*time.Second, func() bool { return slices.Contains(readLines(marks), "c1") })
	ev := func(id string, a mobyevents.Action) {
		bus.Publish(events.Message{Type: mobyevents.ContainerEventType, Action: a, Actor: mobyevents.Actor{ID: id}})
	}
	ev("c2", mobyevents.ActionStart)
	waitFor(t, "the sidecar of c2", 10*time.Second, func() bool { return slices.Contains(readLines(marks), "c2") })
	ev("c1", mobyevents.ActionDie)
	waitFor(t, "the sidecar of c1 to stop", 10*time.Second, func() bool {
		return strings.Contains(strings.Join(readLines(marks), " "), "stop c1")
	})
	if got := s.Running(); len(got) != 1 || got[0] != "sidecar/c2" {
		t.Errorf("running = %v, want sidecar/c2", got)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(readLines(marks), " "); !strings.Contains(got, "stop c2") {
		t.Errorf("marks = %q, want c2's sidecar stopped at shutdown", got)
	}
}
