package kernel

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// TestBCJX86StreamMatchesWhole: undoing the filter on a stream read in
// pieces of any size gives what undoing it on the whole buffer at once
// gives (E8/E9 opcodes and their operands straddle every boundary).
func TestBCJX86StreamMatchesWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 200<<10)
	for i := range data {
		switch rng.IntN(8) {
		case 0:
			data[i] = 0xe8
		case 1:
			data[i] = 0xe9
		case 2:
			data[i] = 0x00
		case 3:
			data[i] = 0xff
		default:
			data[i] = byte(rng.Uint32())
		}
	}
	whole := append([]byte(nil), data...)
	s := newBCJX86()
	s.filter(whole, 0)
	if bytes.Equal(whole, data) {
		t.Fatal("the filter changed nothing: the test data has no branches")
	}
	for name, r := range map[string]io.Reader{
		"one byte": iotest.OneByteReader(bytes.NewReader(data)),
		"half":     iotest.HalfReader(bytes.NewReader(data)),
		"whole":    bytes.NewReader(data),
	} {
		got, err := io.ReadAll(&bcjX86Reader{r: r, s: newBCJX86()})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, whole) {
			t.Errorf("%s: streamed decode differs from the whole-buffer decode", name)
		}
	}
}
