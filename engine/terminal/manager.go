package terminal

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
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
	tickets  []issued // few at a time: scanned whole, in constant time each
	sessions map[string]*Session
	stopping bool
	running  sync.WaitGroup
}

type issued struct {
	token   []byte
	ticket  Ticket
	expires time.Time
}

// NewManager returns a Manager running sessions on cfg.Backend.
func NewManager(cfg Config) *Manager {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{backend: cfg.Backend, log: cfg.Log, now: cfg.Now, hangupGrace: HangupGrace, sessions: map[string]*Session{}}
}

// Issue returns a ticket for a new session with opts: a fresh session ID
// and a token of 256 random bits, good for one Redeem within TokenTTL.
// It does not check the container; the caller (the API) does.
func (m *Manager) Issue(opts Options) (Ticket, error) {
	tok, err := randomHex(32)
	if err != nil {
		return Ticket{}, fmt.Errorf("terminal: issue a token: %w", err)
	}
	id, err := randomHex(16)
	if err != nil {
		return Ticket{}, fmt.Errorf("terminal: issue a session ID: %w", err)
	}
	t := Ticket{Session: id, Token: tok, Options: opts}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return Ticket{}, ErrStopping
	}
	m.pruneLocked()
	m.tickets = append(m.tickets, issued{token: []byte(tok), ticket: t, expires: m.now().Add(TokenTTL)})
	return t, nil
}

// Redeem takes the ticket token opens, once: a second Redeem of the same
// token, one after TokenTTL, an unknown or empty one is ErrBadToken. Every
// issued token is compared, each in constant time.
func (m *Manager) Redeem(token string) (Ticket, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked()
	found := -1
	for i, is := range m.tickets {
		if subtle.ConstantTimeCompare(is.token, []byte(token)) == 1 {
			found = i
		}
	}
	if found < 0 || token == "" {
		return Ticket{}, ErrBadToken
	}
	t := m.tickets[found].ticket
	m.tickets = append(m.tickets[:found], m.tickets[found+1:]...)
	return t, nil
}

// pruneLocked drops expired tokens.
func (m *Manager) pruneLocked() {
	now := m.now()
	kept := m.tickets[:0]
	for _, is := range m.tickets {
		if now.Before(is.expires) {
			kept = append(kept, is)
		}
	}
	clear(m.tickets[len(kept):])
	m.tickets = kept
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
	m.tickets = nil
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

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
