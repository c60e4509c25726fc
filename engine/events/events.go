// Package events is the engine's event bus: containers and images publish
// what happens to them (create, start, die, destroy, pull, delete, ...) as
// Docker event messages, and the API (`GET /events`), the menu-bar app's
// live menu and tests subscribe.
package events

import (
	"context"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// Message is one event, in the Docker Engine API's shape.
type Message = events.Message

// historySize is how many past events a Bus keeps for `since` queries.
const historySize = 1024

// Bus fans events out to subscribers. The zero value is not usable; use
// NewBus.
type Bus struct {
	mu      sync.Mutex
	subs    map[chan Message]func(Message) bool
	history []Message
}

// NewBus returns an empty bus.
func NewBus() *Bus {
	return &Bus{subs: map[chan Message]func(Message) bool{}}
}

// Publish stamps m with the time (when unset) and the local scope, keeps it
// in the history and hands it to every subscriber whose filter accepts it.
// A subscriber that cannot keep up loses events rather than stalling the
// engine.
func (b *Bus) Publish(m Message) {
	if m.TimeNano == 0 {
		now := time.Now()
		m.Time, m.TimeNano = now.Unix(), now.UnixNano()
	}
	if m.Scope == "" {
		m.Scope = "local"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.history = append(b.history, m)
	if len(b.history) > historySize {
		b.history = append(b.history[:0:0], b.history[len(b.history)-historySize:]...)
	}
	for ch, accept := range b.subs {
		if accept != nil && !accept(m) {
			continue
		}
		select {
		case ch <- m:
		default:
		}
	}
}

// Subscribe returns the past events since `since` (zero: none) that accept
// passes, and a channel of the events published from now on, until ctx is
// done; then the channel is closed. accept may be nil (everything).
func (b *Bus) Subscribe(ctx context.Context, since time.Time, accept func(Message) bool) ([]Message, <-chan Message) {
	ch := make(chan Message, 256)
	b.mu.Lock()
	var past []Message
	if !since.IsZero() {
		for _, m := range b.history {
			if m.TimeNano >= since.UnixNano() && (accept == nil || accept(m)) {
				past = append(past, m)
			}
		}
	}
	b.subs[ch] = accept
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
		close(ch)
	}()
	return past, ch
}
