// Package portsync starts a run-time share's stream on a spare
// virtio-serial port (berth.share.N) that an earlier share may have
// used. A port is a byte pipe that outlives the shares on it: bytes the
// last share's 9P client or server sent after the other side stopped
// can still be in it. So each side first sends a token (random per
// mount, MountRequest.serial_sync) and drops what it reads until the
// other side's copy of that token: the guest writes it as soon as it has
// opened the port, the host answers with it once it has seen it, and
// what follows either is the new share's 9P stream.
package portsync

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// TokenSize is the size of a token from NewToken.
const TokenSize = 24

// prefix starts every token, so that a log of the port's bytes shows
// where a share began.
const prefix = "berth9p:"

// NewToken returns a fresh token: prefix and 16 random bytes.
func NewToken() ([]byte, error) {
	t := make([]byte, TokenSize)
	copy(t, prefix)
	if _, err := rand.Read(t[len(prefix):]); err != nil {
		return nil, fmt.Errorf("share port token: %w", err)
	}
	return t, nil
}

// MaxSkip bounds how much Skip drops before it gives up: far more than
// the unanswered 9P messages of a removed share (a few msize-sized
// writes at most).
const MaxSkip = 64 << 20

// Skip reads r until it has read token and returns what it read after
// the token in the same read (the start of the new stream). It fails
// when r fails or ends first, or after MaxSkip bytes without the token.
func Skip(r io.Reader, token []byte) ([]byte, error) {
	if len(token) == 0 {
		return nil, errors.New("share port sync: empty token")
	}
	buf := make([]byte, 0, 64<<10)
	chunk := make([]byte, 32<<10)
	skipped := 0
	for {
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if i := bytes.Index(buf, token); i >= 0 {
			return bytes.Clone(buf[i+len(token):]), nil
		}
		// Keep only what could still be the start of the token.
		if keep := len(token) - 1; len(buf) > keep {
			skipped += len(buf) - keep
			buf = append(buf[:0], buf[len(buf)-keep:]...)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("share port sync: %w before the other side's token", err)
		}
		if skipped > MaxSkip {
			return nil, fmt.Errorf("share port sync: no token in the first %d bytes", MaxSkip)
		}
	}
}
