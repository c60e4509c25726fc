package vmm

import (
	"sync"
	"time"
)

// Ending records how a driver's VM ended, once: the Exited and Exit half
// of Driver, for a backend to embed (as *Ending, from NewEnding).
type Ending struct {
	mu   sync.Mutex
	exit Exit
	done chan struct{}
}

// NewEnding returns an Ending whose VM has not ended yet.
func NewEnding() *Ending { return &Ending{done: make(chan struct{})} }

// Finish records exit (stamped now when its At is zero), runs release
// (what the driver held: sockets, pipes, pid files; nil for nothing) and
// then closes Exited. Only the first call does anything; it reports
// whether it was that call.
func (e *Ending) Finish(exit Exit, release func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-e.done:
		return false
	default:
	}
	if exit.At.IsZero() {
		exit.At = time.Now()
	}
	e.exit = exit
	if release != nil {
		release()
	}
	close(e.done)
	return true
}

// Exited is closed once Finish has recorded the end.
func (e *Ending) Exited() <-chan struct{} { return e.done }

// Exit is how the VM ended; valid once Exited is closed.
func (e *Ending) Exit() Exit {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exit
}
