package human

import (
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct{ got, want string }{
		{Bytes(0), "0B"},
		{Bytes(7_800_000), "7.8MB"},
		{Bytes(1_234_567_890), "1.23GB"},
		{Duration(90 * time.Second), "About a minute"},
		{Duration(5 * time.Minute), "5 minutes"},
		{Ago(now.Add(-3*time.Hour), now), "3 hours ago"},
		{Ago(time.Time{}, now), "N/A"},
		{Ago(time.Unix(0, 0), now), "N/A"},
		{ShortID("sha256:0123456789abcdef0123"), "0123456789ab"},
		{ShortID("abc"), "abc"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
