package container

import (
	"io"
	"sync"
)

// output fans a container's stdout and stderr out to its log and to the
// clients attached at the moment. A slow client slows the container, as
// with Docker; a client whose writes fail is dropped.
type output struct {
	mu   sync.Mutex
	log  *logFile
	subs map[*subscriber]struct{}
}

type subscriber struct {
	stdout, stderr io.Writer
	done           chan struct{}
}

func newOutput() *output { return &output{subs: map[*subscriber]struct{}{}} }

// setLog sets the log file for the coming run.
func (o *output) setLog(l *logFile) {
	o.mu.Lock()
	o.log = l
	o.mu.Unlock()
}

// changed returns a channel closed at the log's next write (at once when
// no run is writing one).
func (o *output) changed() <-chan struct{} {
	o.mu.Lock()
	l := o.log
	o.mu.Unlock()
	if l == nil {
		return closedChan()
	}
	return l.changed()
}

// subscribe adds a client; its done channel is closed when the current or
// next run's output ends.
func (o *output) subscribe(stdout, stderr io.Writer) *subscriber {
	s := &subscriber{stdout: stdout, stderr: stderr, done: make(chan struct{})}
	o.mu.Lock()
	o.subs[s] = struct{}{}
	o.mu.Unlock()
	return s
}

func (o *output) unsubscribe(s *subscriber) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.subs[s]; ok {
		delete(o.subs, s)
		close(s.done)
	}
}

// finish ends every subscription: the run's output is complete.
func (o *output) finish() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for s := range o.subs {
		delete(o.subs, s)
		close(s.done)
	}
	if o.log != nil {
		o.log.Close()
		o.log = nil
	}
}

func (o *output) write(stream string, p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.log != nil {
		_ = o.log.Write(stream, p)
	}
	for s := range o.subs {
		w := s.stdout
		if stream == "stderr" {
			w = s.stderr
		}
		if w == nil {
			continue
		}
		if _, err := w.Write(p); err != nil {
			delete(o.subs, s)
			close(s.done)
		}
	}
}

// streamWriter is the io.Writer one stream of the process writes into.
type streamWriter struct {
	o      *output
	stream string
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.o.write(w.stream, p)
	return len(p), nil
}
