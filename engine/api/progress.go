package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/docker/go-units"
)

// JSONMessage is one line of Docker's streamed JSON progress (pull, load).
// Clients decode the same type.
type JSONMessage struct {
	Status         string          `json:"status,omitempty"`
	ID             string          `json:"id,omitempty"`
	Progress       string          `json:"progress,omitempty"`
	ProgressDetail *ProgressDetail `json:"progressDetail,omitempty"`
	Stream         string          `json:"stream,omitempty"`
	ErrorDetail    *ErrorDetail    `json:"errorDetail,omitempty"`
	Error          string          `json:"error,omitempty"`
	// Aux carries a result object (a push's tag, digest and size).
	Aux any `json:"aux,omitempty"`
}

// ProgressDetail is a JSONMessage's byte counts.
type ProgressDetail struct {
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
}

// ErrorDetail is a JSONMessage's error.
type ErrorDetail struct {
	Message string `json:"message"`
}

// progressStream writes Docker's JSON progress messages, one per line,
// flushing each. Until the first message the response is not committed, so
// an early failure can still answer with a proper HTTP status.
type progressStream struct {
	w       http.ResponseWriter
	mu      sync.Mutex
	started bool
}

func newProgressStream(w http.ResponseWriter) *progressStream { return &progressStream{w: w} }

func (p *progressStream) send(m JSONMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startLocked()
	b, _ := json.Marshal(m)
	_, _ = p.w.Write(append(b, '\r', '\n'))
	if f, ok := p.w.(http.Flusher); ok {
		f.Flush()
	}
}

// start commits the response (200, JSON) without a message: later
// errors go into the stream.
func (p *progressStream) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startLocked()
}

func (p *progressStream) startLocked() {
	if !p.started {
		p.w.Header().Set("Content-Type", "application/json")
		p.w.WriteHeader(http.StatusOK)
		p.started = true
	}
}

// fail reports err: as an HTTP error when nothing was streamed yet, else
// inside the stream, as dockerd does.
func (p *progressStream) fail(s *Server, r *http.Request, err error) {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if !started {
		s.writeError(p.w, r, err)
		return
	}
	p.send(JSONMessage{Error: err.Error(), ErrorDetail: &ErrorDetail{Message: err.Error()}})
}

// progressBar draws dockerd's text bar ("[=====>     ]  1.2MB/3.4MB").
func progressBar(cur, total int64) string {
	if total <= 0 {
		return units.HumanSizeWithPrecision(float64(cur), 3)
	}
	const width = 50
	n := int(float64(width) * float64(cur) / float64(total))
	n = min(max(n, 0), width)
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	return fmt.Sprintf("[%s] %8s/%s", bar, units.HumanSizeWithPrecision(float64(cur), 3), units.HumanSizeWithPrecision(float64(total), 3))
}
