package main

import (
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/testenv"
)

// TestRunEchoExitCode boots a real micro-VM: `berth run --rm` of a
// busybox image prints the command's output and passes its exit code
// through, and the container is gone afterwards.
func TestRunEchoExitCode(t *testing.T) {
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "run", testenv.BusyboxImage(t, nil))
	home := shortHome(t)
	startDaemon(t, home)
	r := berth(t, home, "run", "--rm", ref, "sh", "-c", "echo hi; echo oops >&2; exit 3")
	if r.code != 3 || r.out != "hi\n" || !strings.Contains(r.err, "oops") {
		t.Fatalf("run: %+v", r)
	}
	r = mustOK(t, "ps -a", berth(t, home, "ps", "-a", "-q"))
	if strings.TrimSpace(r.out) != "" {
		t.Fatalf("--rm container left: %q", r.out)
	}
}
