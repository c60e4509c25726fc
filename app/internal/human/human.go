// Package human formats sizes, durations and IDs for people, the way
// Docker's CLI does, so that the CLI and the menu-bar app say the same
// thing about the same container.
package human

import (
	"strings"
	"time"

	"github.com/docker/go-units"
)

// Bytes formats a size in decimal units as Docker does ("7.8MB").
func Bytes(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }

// Duration formats a duration as Docker's status column does ("5
// minutes", "About an hour").
func Duration(d time.Duration) string { return units.HumanDuration(d) }

// Ago renders t relative to now the way `docker ps` and `docker images`
// do ("5 minutes ago"); a zero or pre-epoch time is "N/A".
func Ago(t, now time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "N/A"
	}
	return Duration(now.Sub(t)) + " ago"
}

// ShortID is the first 12 hex digits of an ID, without "sha256:".
func ShortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
