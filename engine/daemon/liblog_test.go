package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestRouteLibraryLogs: logrus's entries (gvisor-tap-vsock's) reach the
// daemon's log at debug level and no longer the process's stderr.
func TestRouteLibraryLogs(t *testing.T) {
	var buf bytes.Buffer
	routeLibraryLogs(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { routeLibraryLogs(slog.New(slog.DiscardHandler)) })
	logrus.Error("cannot receive packets from @, disconnecting: EOF")
	got := buf.String()
	if !strings.Contains(got, "level=DEBUG") || !strings.Contains(got, "cannot receive packets") || !strings.Contains(got, "library=gvisor-tap-vsock") {
		t.Fatalf("daemon log = %q; want the logrus entry at debug level", got)
	}
	var info bytes.Buffer
	routeLibraryLogs(slog.New(slog.NewTextHandler(&info, nil)))
	logrus.Error("dropped at info level")
	if info.Len() != 0 {
		t.Fatalf("an info-level daemon log got %q", info.String())
	}
}
