package user_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/user"
	"github.com/berthvm/berth/internal/usertest"
)

func reader(s *string) io.Reader {
	if s == nil {
		return nil
	}
	return strings.NewReader(*s)
}

func TestResolveTable(t *testing.T) {
	fixtures, cases := usertest.Table(t)
	for _, c := range cases {
		f := fixtures[c.Fixture]
		got, err := user.Resolve(c.Spec, reader(f.Passwd), reader(f.Group), c.Extra)
		if c.Want.Error != "" && err != nil && err.Error() != c.Want.Text {
			t.Errorf("%s: %q, want exactly %q", c.Spec, err, c.Want.Text)
		}
		usertest.Check(t, c, got, err)
	}
}

func TestResolveReadErrorsAndLongLines(t *testing.T) {
	boom := errors.New("disk gone")
	if _, err := user.Resolve("app", iotest.ErrReader(boom), nil, nil); !errors.Is(err, boom) || !strings.Contains(err.Error(), "passwd") {
		t.Errorf("read error: %v", err)
	}
	long := strings.Repeat("x", 2<<20)
	_, err := user.Resolve("app", strings.NewReader(long), nil, nil)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a 2 MiB line: %v", err)
	}
}

// TestNames: docker top's user names by uid; the first line of a uid
// wins, lines that do not parse are skipped.
func TestNames(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken:x:zz:0\nwww:x:33:33::/var/www:/bin/false\nalias:x:33:33::/:/bin/sh\nshort\n"
	got, err := user.Names(strings.NewReader(passwd))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "root" || got[33] != "www" {
		t.Errorf("Names = %v, want 0:root 33:www", got)
	}
	if got, err := user.Names(nil); err != nil || len(got) != 0 {
		t.Errorf("Names(nil) = %v, %v", got, err)
	}
}
