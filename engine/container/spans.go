package container

import (
	"context"
	"log/slog"
	"time"
)

// spans times the phases of one start for a debug log line: each mark
// records the time since the previous one under its name.
type spans struct {
	last  time.Time
	attrs []any
}

func newSpans(t0 time.Time) *spans { return &spans{last: t0} }

// mark ends the phase called name.
func (s *spans) mark(name string) {
	now := time.Now()
	s.attrs = append(s.attrs, name, now.Sub(s.last).Round(time.Millisecond))
	s.last = now
}

// log writes the phases at debug level as msg, with args first.
func (s *spans) log(log *slog.Logger, msg string, args ...any) {
	if log == nil || !log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	log.Debug(msg, append(args, s.attrs...)...)
}
