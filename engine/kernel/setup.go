package kernel

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// SetupPhase says where a Setup stands.
type SetupPhase string

// The phases of a Setup, in order; a Setup ends Ready or Failed, and a
// later Prepare starts again from the top.
const (
	// SetupIdle: nothing asked for the kernel yet.
	SetupIdle SetupPhase = "idle"
	// SetupDownloading: the kernel package is being downloaded (Done of
	// Total bytes).
	SetupDownloading SetupPhase = "downloading"
	// SetupUnpacking: downloaded and verified; being unpacked.
	SetupUnpacking SetupPhase = "unpacking"
	// SetupReady: the kernel is on disk and opens.
	SetupReady SetupPhase = "ready"
	// SetupFailed: the last Prepare failed; Err says why and what to do.
	SetupFailed SetupPhase = "failed"
)

// SetupState is a snapshot of a Setup: a plain value a status display
// shows (String) or inspects.
type SetupState struct {
	Phase SetupPhase
	// URL is the package being (or last) downloaded; "" when nothing
	// needed downloading.
	URL string
	// Done and Total count the download's bytes; Total is -1 when the
	// server did not say.
	Done, Total int64
	// Version is the ready kernel's release.
	Version string
	// Err is why the last Prepare failed (Phase SetupFailed).
	Err error
}

// Percent is the download's progress, 0 to 100, or -1 when its size is
// unknown.
func (s SetupState) Percent() int {
	if s.Total <= 0 {
		return -1
	}
	p := int(s.Done * 100 / s.Total)
	return min(max(p, 0), 100)
}

// String is the state in words, for a menu or a status line: "Setting up
// Berth… 43 %".
func (s SetupState) String() string {
	switch s.Phase {
	case SetupDownloading:
		if p := s.Percent(); p >= 0 {
			return fmt.Sprintf("Setting up Berth… %d %%", p)
		}
		return fmt.Sprintf("Setting up Berth… %.1f MB", float64(s.Done)/1e6)
	case SetupUnpacking:
		return "Setting up Berth… unpacking the Linux kernel"
	case SetupReady:
		return "Berth is ready"
	case SetupFailed:
		return fmt.Sprintf("Berth could not set up its Linux kernel: %v", s.Err)
	default:
		return "Starting Berth…"
	}
}

// ErrFetch is the class of Setup's error when the kernel it needs could
// not be downloaded or did not verify; the error says what to do.
var ErrFetch = errors.New("kernel download failed")

// Setup prepares the kernel Resolve chooses, downloading it when it is
// not on disk yet (the pinned default on a Mac's first run), one Prepare
// at a time, and keeps a SetupState of it. It is safe for concurrent
// use.
type Setup struct {
	opts Options
	run  sync.Mutex // held by Prepare

	mu    sync.Mutex
	state SetupState
}

// NewSetup returns a Setup resolving with o (its Progress and Offline are
// the Setup's own).
func NewSetup(o Options) *Setup {
	return &Setup{opts: o, state: SetupState{Phase: SetupIdle, Total: -1}}
}

// State is where the Setup stands now.
func (s *Setup) State() SetupState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *Setup) set(st SetupState) {
	s.mu.Lock()
	s.state = st
	s.mu.Unlock()
}

// Prepare resolves the kernel (Resolve's order), downloading, verifying
// and unpacking it first when it is still to be fetched, with the
// progress in State. A download that fails, or does not match its
// SHA-256, is an ErrFetch error that says what to do.
func (s *Setup) Prepare(ctx context.Context) (*Kernel, error) {
	s.run.Lock()
	defer s.run.Unlock()
	o := s.opts
	o.Offline, o.Progress = true, nil
	k, err := Resolve(ctx, o)
	var nf *NotFetchedError
	if err != nil && errors.As(err, &nf) {
		s.set(SetupState{Phase: SetupDownloading, URL: nf.URL, Total: -1})
		o.Offline = false
		o.Progress = func(done, total int64) {
			st := SetupState{Phase: SetupDownloading, URL: nf.URL, Done: done, Total: total}
			if total > 0 && done >= total {
				st.Phase = SetupUnpacking
			}
			s.set(st)
		}
		k, err = Resolve(ctx, o)
		if err != nil && ctx.Err() == nil {
			err = fetchAdvice(nf.URL, err)
		}
	}
	if err != nil {
		st := s.State()
		st.Phase, st.Err = SetupFailed, err
		s.set(st)
		return nil, err
	}
	st := SetupState{Phase: SetupReady, Version: k.Version, Total: -1}
	if nf != nil {
		st.URL = nf.URL
	}
	s.set(st)
	return k, nil
}

// fetchError is a failed kernel download with what to do about it; it is
// an ErrFetch and keeps the cause's class (errdefs).
type fetchError struct {
	url   string
	cause error
}

func (e *fetchError) Error() string {
	what := "check that this computer is online (the kernel is downloaded once, from " + e.url + ") and try again: quit and reopen Berth, or start a container"
	if errors.Is(e.cause, ErrChecksum) {
		what = "the file downloaded from " + e.url + " is not the pinned one (a proxy or a moved file); try again, and if it persists report it"
	}
	return fmt.Sprintf("%v. To fix: %s; or download a kernel package yourself and run `berth system kernel set --url URL --sha256 HEX` (a mirror) or `berth system kernel set --path DIR` (unpacked)", e.cause, what)
}

func (e *fetchError) Unwrap() []error { return []error{ErrFetch, e.cause} }

func fetchAdvice(url string, err error) error { return &fetchError{url: url, cause: err} }
