package terminal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/onetime"
)

// ErrBadToken is Redeem's error for a wrong, reused, expired or missing
// token; it says no more, on purpose.
var ErrBadToken = errdefs.PermissionDenied(errors.New("terminal: the session token is not valid (wrong, used or expired): open a new terminal"))

// ErrStopping is Issue's and Serve's error once Shutdown has begun.
var ErrStopping = errdefs.Unavailable(errors.New("terminal: the engine is stopping"))

// Config configures a Manager.
type Config struct {
	// Backend runs the execs.
	Backend Backend
	// Log is the engine's logger (default slog.Default()).
	Log *slog.Logger
	// Now is the clock tokens expire by (default time.Now); tests set it.
	Now func() time.Time
}

// Manager issues session tickets and runs sessions; Shutdown ends them
// all. Its zero value is not usable: call NewManager.
type Manager struct {
	backend Backend
	log     *slog.Logger
	now     func() time.Time
	// hangupGrace is HangupGrace; tests shorten it.
	hangupGrace time.Duration

	mu       sync.Mutex
	tickets  *onetime.Store[Ticket]
	sessions map[string]*Session
	stopping bool
	running  sync.WaitGroup
}

// NewManager returns a Manager running sessions on cfg.Backend.
func NewManager(cfg Config) *Manager {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{backend: cfg.Backend, log: cfg.Log, now: cfg.Now, hangupGrace: HangupGrace, tickets: onetime.New[Ticket](TokenTTL, cfg.Now), sessions: map[string]*Session{}}
}

// Issue returns a ticket for a new session with opts: a fresh session ID
// and a token of 256 random bits, good for one Redeem within TokenTTL.
// It does not check the container; the caller (the API) does.
func (m *Manager) Issue(opts Options) (Ticket, error) {
	id, err := onetime.RandomHex(16)
	if err != nil {
		return Ticket{}, fmt.Errorf("terminal: issue a session ID: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return Ticket{}, ErrStopping
	}
	// The store keeps the ticket without its token, which Issue makes.
	t := Ticket{Session: id, Options: opts}
	tok, err := m.tickets.Issue(t)
	if err != nil {
		return Ticket{}, fmt.Errorf("terminal: %w", err)
	}
	t.Token = tok
	return t, nil
}

// Redeem takes the ticket token opens, once: a second Redeem of the same
// token, one after TokenTTL, an unknown or empty one is ErrBadToken. Every
// issued token is compared, each in constant time.
func (m *Manager) Redeem(token string) (Ticket, error) {
	t, ok := m.tickets.Redeem(token)
	if !ok {
		return Ticket{}, ErrBadToken
	}
	t.Token = token
	return t, nil
}

// Session returns the running session id, if there is one.
func (m *Manager) Session(id string) (*Session, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	return s, ok
}

// Sessions returns the sessions running now.
func (m *Manager) Sessions() []*Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		out = append(out, s)
	}
	return out
}

// Shutdown refuses new tickets and sessions, tells every running session
// engine-stopping (each ends its shell and closes its transport), and
// waits for them all to end, or for ctx.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.stopping = true
	m.tickets.Clear()
	for _, s := range m.sessions {
		s.stop()
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() {
		m.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("terminal: wait for the sessions to end: %w", ctx.Err())
	}
}
