package guest

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountOptions(t *testing.T) {
	for _, c := range []struct {
		opts  []string
		flags uintptr
		data  string
	}{
		{[]string{"ro,noatime,discard,commit=30"}, unix.MS_RDONLY | unix.MS_NOATIME, "discard,commit=30"},
		{[]string{"remount", "bind", "ro"}, unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY, ""},
		{[]string{"ro,rw", "nosuid", "defaults,,size=1m"}, unix.MS_NOSUID, "size=1m"},
		{nil, 0, ""},
	} {
		flags, data := ParseMountOptions(c.opts...)
		if flags != c.flags || data != c.data {
			t.Errorf("ParseMountOptions(%q) = %#x %q, want %#x %q", c.opts, flags, data, c.flags, c.data)
		}
	}
}
