package ctxio

import (
	"context"
	"errors"
	"io"
	"testing"
)

// endless is a reader of zeros that cancels its context after limit bytes.
type endless struct {
	n, limit int64
	cancel   func()
}

func (e *endless) Read(p []byte) (int, error) {
	e.n += int64(len(p))
	if e.n >= e.limit {
		e.cancel()
	}
	clear(p)
	return len(p), nil
}

func TestCopyStopsWhenCancelledMidway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &endless{limit: 1 << 20, cancel: cancel}
	n, err := Copy(ctx, io.Discard, src)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy of an endless reader cancelled after 1 MiB = %d, %v; want context.Canceled", n, err)
	}
	if n < 1<<20 || n > 2<<20 {
		t.Errorf("Copy read %d bytes; want it to stop within a buffer of the 1 MiB cancellation", n)
	}
}
