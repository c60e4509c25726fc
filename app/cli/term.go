package cli

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// terminal is the CLI's own terminal, when stdin is one: raw mode for a
// tty session, restored on every exit path, and its size.
type terminal struct {
	fd    int
	state *term.State
}

// openTerminal returns the terminal on in, or nil when in is not one.
func openTerminal(in io.Reader) *terminal {
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &terminal{fd: int(f.Fd())}
}

// raw puts the terminal in raw mode; restore undoes it.
func (t *terminal) raw() error {
	if t == nil {
		return nil
	}
	st, err := term.MakeRaw(t.fd)
	if err != nil {
		return err
	}
	t.state = st
	return nil
}

func (t *terminal) restore() {
	if t != nil && t.state != nil {
		_ = term.Restore(t.fd, t.state)
		t.state = nil
	}
}

// size returns rows and columns (0, 0 when unknown).
func (t *terminal) size() (rows, cols uint) {
	if t == nil {
		return 0, 0
	}
	w, h, err := term.GetSize(t.fd)
	if err != nil {
		return 0, 0
	}
	return uint(h), uint(w)
}

// watchResize calls resize with the current size now and on every
// SIGWINCH until ctx is done.
func (t *terminal) watchResize(ctx context.Context, resize func(rows, cols uint)) {
	if t == nil {
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	go func() {
		defer signal.Stop(ch)
		if r, c := t.size(); r > 0 {
			resize(r, c)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if r, c := t.size(); r > 0 {
					resize(r, c)
				}
			}
		}
	}()
}
