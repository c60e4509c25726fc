package container

import (
	"errors"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
)

// TestProcessError: the class the guest gives a failed start decides the
// exit code, Docker's wording and Docker's 400; no text is matched.
func TestProcessError(t *testing.T) {
	other := errors.New("agent start process main: connection reset")
	cases := []struct {
		err    error
		code   int
		text   string
		status int
	}{
		{errdefs.NotFound(errors.New(`exec: "nope": executable file not found in $PATH`)), 127, `exec: "nope": executable file not found in $PATH`, 400},
		{errdefs.PermissionDenied(errors.New(`exec: "nope": is a directory`)), 126, `exec: "nope": permission denied`, 400},
		// A message that mentions permission denied without the class is
		// not a permission-denied start.
		{errors.New("open /run/x: permission denied"), 0, "open /run/x: permission denied", 500},
		{other, 0, other.Error(), 500},
	}
	for _, c := range cases {
		err := processError("nope", c.err)
		code := 0
		var ce *exitCodeError
		if errors.As(err, &ce) {
			code = ce.code
		}
		if code != c.code {
			t.Errorf("%v: exit code %d, want %d", c.err, code, c.code)
		}
		if !strings.HasPrefix(err.Error(), c.text) || !errors.Is(err, c.err) {
			t.Errorf("%v: error %q, want it to start with %q and wrap the cause", c.err, err, c.text)
		}
		if got := errdefs.HTTPStatus(err); got != c.status {
			t.Errorf("%v: HTTP %d, want %d", c.err, got, c.status)
		}
	}
}
