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

// TestDockerStartErrorIsBadRequest: a command the container may not run
// is permission denied wrapped as invalid argument; Docker answers 400.
func TestDockerStartErrorIsBadRequest(t *testing.T) {
	err := InvalidArgument(fmt.Errorf("exec: %q: %w", "/etc", PermissionDenied(errors.New("permission denied"))))
	if got := HTTPStatus(err); got != 400 {
		t.Errorf("status %d, want 400", got)
	}
	if !errors.Is(err, ErrPermissionDenied) {
		t.Error("the permission-denied class is lost")
	}
}
