// Package onetime is a store of one-use tokens: each is 256 random bits,
// good for one Redeem within a time to live, compared in constant time.
// The terminal Manager's session tickets and the Berth window's sign-in
// tokens are both kept in one (docs/terminal.md, docs/berth-window.md).
package onetime

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// Store holds issued tokens, each with its value. Its zero value is not
// usable: call New. It is safe for concurrent use.
type Store[T any] struct {
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	issued []issued[T] // few at a time: scanned whole, in constant time each
}

type issued[T any] struct {
	token   []byte
	value   T
	expires time.Time
}

// New returns a Store whose tokens are good for ttl by the clock now
// (nil: time.Now).
func New[T any](ttl time.Duration, now func() time.Time) *Store[T] {
	if now == nil {
		now = time.Now
	}
	return &Store[T]{ttl: ttl, now: now}
}

// Issue returns a fresh token for v: 256 random bits, hex-encoded.
func (s *Store[T]) Issue(v T) (string, error) {
	tok, err := RandomHex(32)
	if err != nil {
		return "", fmt.Errorf("issue a one-use token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	s.issued = append(s.issued, issued[T]{token: []byte(tok), value: v, expires: s.now().Add(s.ttl)})
	return tok, nil
}

// Redeem takes the value token was issued for, once: a second Redeem of
// the same token, one after the time to live, an unknown or empty token
// is false. Every issued token is compared, each in constant time.
func (s *Store[T]) Redeem(token string) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	found := -1
	for i, is := range s.issued {
		if subtle.ConstantTimeCompare(is.token, []byte(token)) == 1 {
			found = i
		}
	}
	var zero T
	if found < 0 || token == "" {
		return zero, false
	}
	v := s.issued[found].value
	s.issued = append(s.issued[:found], s.issued[found+1:]...)
	return v, true
}

// Clear drops every issued token.
func (s *Store[T]) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issued = nil
}

// pruneLocked drops expired tokens.
func (s *Store[T]) pruneLocked() {
	now := s.now()
	kept := s.issued[:0]
	for _, is := range s.issued {
		if now.Before(is.expires) {
			kept = append(kept, is)
		}
	}
	clear(s.issued[len(kept):])
	s.issued = kept
}

// RandomHex returns n random bytes, hex-encoded.
func RandomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
