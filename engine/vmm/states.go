package vmm

// States is a Machine's state and its notifications: it only moves
// forward, and hands each new state, in order, to Config.OnState on a
// goroutine of its own, so a slow callback never stalls the Machine. The
// backends call its methods with their own lock held.
type States struct {
	cur State
	ch  chan State
}

// NewStates returns the tracker for a Machine; onState may be nil.
func NewStates(onState func(State)) States {
	s := States{}
	if onState != nil {
		s.ch = make(chan State, 16)
		go func(ch <-chan State) {
			for st := range ch {
				onState(st)
			}
		}(s.ch)
	}
	return s
}

// Current is the state the Machine is in.
func (s *States) Current() State { return s.cur }

// Set moves to st unless the Machine is already there or past it;
// StateStopped, the last state, ends the notifications.
func (s *States) Set(st State) {
	if st <= s.cur {
		return
	}
	s.cur = st
	if s.ch == nil {
		return
	}
	s.ch <- st
	if st == StateStopped {
		close(s.ch)
		s.ch = nil
	}
}
