package procstat

import (
	"os"
	"testing"
)

// TestParse: a command name with spaces and parentheses does not shift
// the fields after it.
func TestParse(t *testing.T) {
	line := "42 (a (b) c) S 7 42 42 34816 42 4194304 1 0 0 0 5 6 0 0 20 0 1 0 12345 1000 10 0\n"
	st, err := parse(42, []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stat{Comm: "a (b) c", PPID: 7, TTY: 34816, CPUTicks: 11, StartTicks: 12345}) {
		t.Errorf("parse = %+v", st)
	}
	if _, err := parse(1, []byte("1 nocomm S 0")); err == nil {
		t.Error("a line without a command name parsed")
	}
}

// TestReadSelf reads this process.
func TestReadSelf(t *testing.T) {
	st, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PPID != os.Getppid() || st.StartTicks == 0 {
		t.Errorf("Read(self) = %+v; parent %d", st, os.Getppid())
	}
}
