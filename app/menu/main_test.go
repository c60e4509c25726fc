package menu

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/internal/testenv"
	"go.uber.org/goleak"
)

// TestMain builds guestinit for the host arch and points the engine at
// it (as `make build` lays it out next to berth), and fails the run when
// a test leaves a goroutine behind (a State or Dispatcher not stopped).
func TestMain(m *testing.M) {
	code := testenv.RunWithGuestinit(m, "../../guestinit", launcher.GuestinitEnv)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left behind: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// engineHome is a Berth home in a short temporary path (unix socket
// paths are short), removed when the test ends.
func engineHome(t *testing.T) home.Home {
	t.Helper()
	dir, err := os.MkdirTemp("", "bm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h, err := home.Resolve(filepath.Join(dir, "h"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// runningEngine is a daemon serving on h in-process, as the app hosts
// it; stop shuts it down (once; cleanup calls it too).
type runningEngine struct {
	*daemon.Daemon
	stop func()
}

func startEngine(t *testing.T, h home.Home) *runningEngine {
	t.Helper()
	d, err := daemon.Start(context.Background(), daemon.Config{Home: h, LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := d.Shutdown(ctx); err != nil {
				t.Errorf("engine shutdown: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &runningEngine{Daemon: d, stop: stop}
}

// menuFor is a State and Dispatcher on h's socket, the State running
// until the test ends.
func menuFor(t *testing.T, h home.Home, opts ...StateOption) (*State, *Dispatcher, *client.Client) {
	t.Helper()
	cl, err := client.New(h.Socket())
	if err != nil {
		t.Fatal(err)
	}
	st := NewState(cl, append([]StateOption{WithBackoff(10*time.Millisecond, 200*time.Millisecond)}, opts...)...)
	d := NewDispatcher(cl, st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		d.Close()
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("State.Run returned %v, want context.Canceled", err)
		}
		cl.Close()
	})
	return st, d, cl
}

// waitFor waits (on Changed, up to a minute) until the Snapshot
// satisfies ok, and returns it; what describes the wait.
func waitFor(t *testing.T, st *State, what string, ok func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		s := st.Snapshot()
		if ok(s) {
			return s
		}
		select {
		case <-st.Changed():
		case <-deadline:
			t.Fatalf("waiting for %s: the model is\n%+v\n%s", what, s, Render(Build(s, time.Now())))
		}
	}
}

// containerNamed finds a container in s.
func containerNamed(s Snapshot, name string) (Container, bool) {
	for _, c := range s.Containers {
		if c.Name == name {
			return c, true
		}
	}
	return Container{}, false
}

// hasImage reports whether s lists ref.
func hasImage(s Snapshot, ref string) bool {
	for _, im := range s.Images {
		for _, r := range im.Refs {
			if r == ref {
				return true
			}
		}
	}
	return false
}

// nextNotice waits up to a minute for a notice.
func nextNotice(t *testing.T, st *State) Notice {
	t.Helper()
	select {
	case n := <-st.Notices():
		return n
	case <-time.After(time.Minute):
		t.Fatal("no notice came")
		return Notice{}
	}
}
