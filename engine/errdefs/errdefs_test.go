package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestClassesKeepMessageAndMapToStatus(t *testing.T) {
	base := errors.New("No such image: alpine:latest")
	cases := []struct {
		err    error
		class  error
		status int
	}{
		{NotFound(base), ErrNotFound, 404},
		{AlreadyExists(base), ErrAlreadyExists, 409},
		{Conflict(base), ErrConflict, 409},
		{InvalidArgument(base), ErrInvalidArgument, 400},
		{Unauthorized(base), ErrUnauthorized, 401},
		{PermissionDenied(base), ErrPermissionDenied, 403},
		{Unavailable(base), ErrUnavailable, 503},
		{NotImplemented(base), ErrNotImplemented, 501},
	}
	if len(cases) != len(Classes()) {
		t.Errorf("%d cases for %d classes: a class has no HTTP status test", len(cases), len(Classes()))
	}
	for _, c := range cases {
		wrapped := fmt.Errorf("pull: %w", c.err)
		if !errors.Is(wrapped, c.class) || !errors.Is(wrapped, base) {
			t.Errorf("%v: class or cause lost through wrapping", c.class)
		}
		if c.err.Error() != base.Error() {
			t.Errorf("%v: message changed to %q", c.class, c.err.Error())
		}
		if got := HTTPStatus(wrapped); got != c.status {
			t.Errorf("%v: status %d, want %d", c.class, got, c.status)
		}
		if back := FromHTTPStatus(c.status); c.status != 409 && back != c.class {
			t.Errorf("FromHTTPStatus(%d) = %v, want %v", c.status, back, c.class)
		}
	}
	if HTTPStatus(errors.New("x")) != 500 || HTTPStatus(nil) != 200 || HTTPStatus(context.Canceled) != 408 {
		t.Error("unclassified, nil or cancelled errors map wrong")
	}
	if NotFound(nil) != nil {
		t.Error("wrapping nil must stay nil")
	}
	if WithClass(base, nil) != base || !errors.Is(WithClass(base, ErrConflict), ErrConflict) {
		t.Error("WithClass")
	}
}

// TestOutermostClassWins: a layer that wraps a classed error in another
// class reclassifies it (Docker answers a command missing at start with
// 400, not 404); errors.Is still sees both.
func TestOutermostClassWins(t *testing.T) {
	notFound := NotFound(errors.New(`exec: "x": executable file not found in $PATH`))
	start := InvalidArgument(fmt.Errorf("exec: %q: %w", "x", notFound))
	cases := []struct {
		err    error
		class  error
		status int
	}{
		{start, ErrInvalidArgument, 400},
		{fmt.Errorf("start c1: %w", start), ErrInvalidArgument, 400},
		{notFound, ErrNotFound, 404},
		{InvalidArgument(fmt.Errorf("x: %w", PermissionDenied(errors.New("permission denied")))), ErrInvalidArgument, 400},
		{Unavailable(fmt.Errorf("dial agent: %w", context.DeadlineExceeded)), ErrUnavailable, 503},
		{fmt.Errorf("wait: %w", context.Canceled), context.Canceled, 408},
		{fmt.Errorf("lookup: %w", ErrNotFound), ErrNotFound, 404},
		{errors.Join(errors.New("plain"), Conflict(errors.New("busy")), NotFound(errors.New("gone"))), ErrConflict, 409},
		{errors.New("plain"), nil, 500},
	}
	for _, c := range cases {
		if got := Class(c.err); got != c.class {
			t.Errorf("Class(%q) = %v, want %v", c.err, got, c.class)
		}
		if got := HTTPStatus(c.err); got != c.status {
			t.Errorf("HTTPStatus(%q) = %d, want %d", c.err, got, c.status)
		}
	}
	if !errors.Is(start, ErrNotFound) || !errors.Is(start, ErrInvalidArgument) {
		t.Error("errors.Is must still see every class in the chain")
	}
}
