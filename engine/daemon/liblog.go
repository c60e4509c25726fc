package daemon

import (
	"context"
	"io"
	"log/slog"

	"github.com/sirupsen/logrus"
)

// routeLibraryLogs sends what logrus logs — the logger of
// gvisor-tap-vsock, under user-mode networks — to log at debug level
// instead of the process's stderr. Its errors are mostly a VM's end
// ("cannot receive packets from @, disconnecting: … EOF" each time a
// container stops), which the engine reports itself where it matters.
// logrus's logger is process-wide, so the daemon last started in a
// process gets them.
func routeLibraryLogs(log *slog.Logger) {
	l := logrus.StandardLogger()
	l.SetOutput(io.Discard)
	l.ReplaceHooks(logrus.LevelHooks{})
	l.AddHook(slogHook{log})
}

// slogHook is a logrus hook that logs each entry to an slog.Logger at
// debug level.
type slogHook struct{ log *slog.Logger }

// Levels is every level: the hook decides what to keep.
func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

// Fire logs e at debug level, naming the library.
func (h slogHook) Fire(e *logrus.Entry) error {
	h.log.Log(context.Background(), slog.LevelDebug, e.Message, "library", "gvisor-tap-vsock", "level", e.Level.String())
	return nil
}
