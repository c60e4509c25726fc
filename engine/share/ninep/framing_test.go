package ninep

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// recorder keeps each Write it gets as one piece.
type recorder struct{ writes [][]byte }

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, append([]byte(nil), p...))
	return len(p), nil
}

func message(typ byte, body string) []byte {
	m := make([]byte, messageHeaderLen, messageHeaderLen+len(body))
	binary.LittleEndian.PutUint32(m, uint32(messageHeaderLen+len(body)))
	m[4] = typ
	return append(m, body...)
}

func TestMessageWriterWritesWholeMessages(t *testing.T) {
	a, b, c := message(1, "fixed part and payload"), message(2, ""), message(3, "x")
	var rec recorder
	w := &messageWriter{w: &rec}
	// a in three pieces (header, fixed part, payload), as p9 sends it.
	for _, p := range [][]byte{a[:7], a[7:12], a[12:]} {
		if n, err := w.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
		}
	}
	// b and the start of c in one write, then the rest of c.
	w.Write(append(append([]byte(nil), b...), c[:3]...))
	w.Write(c[3:])
	want := [][]byte{a, b, c}
	if len(rec.writes) != len(want) {
		t.Fatalf("%d writes, want %d (one per message): %q", len(rec.writes), len(want), rec.writes)
	}
	for i := range want {
		if !bytes.Equal(rec.writes[i], want[i]) {
			t.Errorf("write %d = %q, want %q", i, rec.writes[i], want[i])
		}
	}
}

func TestMessageWriterPassesThroughNonMessages(t *testing.T) {
	var rec recorder
	w := &messageWriter{w: &rec}
	junk := []byte{1, 0, 0, 0, 9, 9} // a length under the header's
	w.Write(junk)
	if len(rec.writes) != 1 || !bytes.Equal(rec.writes[0], junk) {
		t.Errorf("writes %q, want the bytes passed on", rec.writes)
	}
}
