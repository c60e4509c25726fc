package rootfs

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestReadAhead(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // 4.6 MiB
	ra := newReadAhead(iotest.HalfReader(bytes.NewReader(data)))
	got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(ra, 100)))
	mustDo(t, err)
	rest, err := io.ReadAll(ra)
	mustDo(t, err)
	ra.Close()
	if !bytes.Equal(append(got, rest...), data) {
		t.Fatal("data differs")
	}

	boom := errors.New("boom")
	ra = newReadAhead(io.MultiReader(bytes.NewReader(data[:5000]), iotest.ErrReader(boom)))
	if b, err := io.ReadAll(ra); !errors.Is(err, boom) || len(b) != 5000 {
		t.Errorf("source error: %d bytes, %v", len(b), err)
	}
	ra.Close()

	// Close while the goroutine is ahead of the reader and blocked.
	ra = newReadAhead(bytes.NewReader(bytes.Repeat(data, 4)))
	buf := make([]byte, 10)
	_, err = ra.Read(buf)
	mustDo(t, err)
	ra.Close()
	ra.Close() // twice is fine
}
