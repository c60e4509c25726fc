package events

import (
	"context"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

func TestBusDeliversFiltersAndEnds(t *testing.T) {
	b := NewBus()
	start := time.Now()
	b.Publish(Message{Type: events.ContainerEventType, Action: "create", Actor: events.Actor{ID: "a"}})
	ctx, cancel := context.WithCancel(context.Background())
	onlyA := func(m Message) bool { return m.Actor.ID == "a" }
	past, ch := b.Subscribe(ctx, start, onlyA)
	if len(past) != 1 || past[0].Action != "create" || past[0].Scope != "local" || past[0].TimeNano == 0 {
		t.Fatalf("history: %+v", past)
	}
	if none, _ := b.Subscribe(ctx, time.Time{}, nil); len(none) != 0 {
		t.Fatalf("zero since gave history: %+v", none)
	}
	b.Publish(Message{Type: events.ContainerEventType, Action: "start", Actor: events.Actor{ID: "b"}})
	b.Publish(Message{Type: events.ContainerEventType, Action: "die", Actor: events.Actor{ID: "a"}})
	select {
	case m := <-ch:
		if m.Action != "die" {
			t.Fatalf("filter let through %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	// A subscriber that does not read loses events; Publish never blocks.
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			b.Publish(Message{Action: "x", Actor: events.Actor{ID: "a"}})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	// The subscription ends with its context: the channel is closed.
	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("channel not closed after the context ended")
		}
	}
}
