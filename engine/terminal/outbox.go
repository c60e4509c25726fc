package terminal

import (
	"errors"
	"sync"
	"time"
)

// errSessionOver is what the guest's output copy gets once the session
// has ended, so that copy stops.
var errSessionOver = errors.New("terminal: the session has ended")

// outbox is the pty's output on its way to the page: the io.Writer the
// guest's output is copied into, a batch buffer of at most BatchBytes, and
// the flow-control count of bytes sent and not acknowledged.
//
// Write blocks while the buffer is full or the session is paused (the
// count passed HighWater and has not come back under LowWater), which
// stops the copy from the guest, so its pty writer blocks: the engine
// holds at most HighWater + BatchBytes of output sent and unacknowledged,
// plus one batch buffered.
type outbox struct {
	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte
	paused  bool
	closed  bool // the session is over: Write fails
	discard bool // nobody reads (a detached session's transport is gone): Write drops
	stats   Stats

	kick chan struct{} // the buffer went from empty to not (cap 1)
	full chan struct{} // the buffer is full (cap 1)
}

func newOutbox() *outbox {
	o := &outbox{kick: make(chan struct{}, 1), full: make(chan struct{}, 1)}
	o.cond = sync.NewCond(&o.mu)
	return o
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Write buffers p for the page, waiting while the buffer is full or
// output is paused.
func (o *outbox) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for len(p) > 0 {
		for !o.closed && !o.discard && (o.paused || len(o.buf) >= BatchBytes) {
			o.cond.Wait()
		}
		if o.closed {
			return n, errSessionOver
		}
		if o.discard {
			return n + len(p), nil
		}
		k := min(len(p), BatchBytes-len(o.buf))
		if len(o.buf) == 0 {
			signal(o.kick)
		}
		o.buf = append(o.buf, p[:k]...)
		if len(o.buf) >= BatchBytes {
			signal(o.full)
		}
		p, n = p[k:], n+k
	}
	return n, nil
}

// take returns the buffered output and counts it as sent and
// unacknowledged, pausing output when that passes HighWater.
func (o *outbox) take() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.buf
	if len(b) == 0 {
		return nil
	}
	o.buf = make([]byte, 0, BatchBytes)
	n := int64(len(b))
	o.stats.Sent += n
	o.stats.Unacked += n
	o.stats.PeakUnacked = max(o.stats.PeakUnacked, o.stats.Unacked)
	if o.stats.Unacked >= HighWater {
		o.paused = true
	}
	o.cond.Broadcast()
	return b
}

// ack counts n bytes acknowledged by the page, resuming output once the
// unacknowledged count is under LowWater. An ack of more than was sent
// counts as all of it.
func (o *outbox) ack(n int64) {
	if n <= 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	n = min(n, o.stats.Unacked)
	o.stats.Unacked -= n
	o.stats.Acked += n
	if o.paused && o.stats.Unacked < LowWater {
		o.paused = false
		o.cond.Broadcast()
	}
}

// close makes Write fail from now on (the session is over).
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.buf = nil
	o.cond.Broadcast()
	o.mu.Unlock()
}

// drop makes Write drop output from now on (a detached session lost its
// transport; its shell runs on).
func (o *outbox) drop() {
	o.mu.Lock()
	o.discard = true
	o.buf = nil
	o.cond.Broadcast()
	o.mu.Unlock()
}

func (o *outbox) snapshot() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// batches calls send with each batch: BatchDelay after the first byte of
// it was written, or as soon as the buffer is full; until done closes.
func (o *outbox) batches(done <-chan struct{}, send func([]byte) error) {
	t := time.NewTimer(BatchDelay)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-o.kick:
		case <-o.full:
		case <-done:
			return
		}
		t.Reset(BatchDelay)
		select {
		case <-t.C:
		case <-o.full:
			t.Stop()
		case <-done:
			return
		}
		if b := o.take(); b != nil {
			if err := send(b); err != nil {
				return
			}
		}
	}
}
