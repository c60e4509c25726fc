package portsync

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestSkip: the stream after the token comes back whatever precedes it
// (nothing, stale bytes, a token-like prefix, the token split across
// reads); a stream without the token fails.
func TestSkip(t *testing.T) {
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewToken()
	if bytes.Equal(tok, other) || len(tok) != TokenSize || !bytes.HasPrefix(tok, []byte(prefix)) {
		t.Fatalf("tokens %q, %q", tok, other)
	}
	stale := bytes.Repeat([]byte("stale 9P bytes "), 10000)
	for name, in := range map[string][]byte{
		"token first":                      append(bytes.Clone(tok), "new stream"...),
		"after stale bytes":                append(append(bytes.Clone(stale), tok...), "new stream"...),
		"after another token and a prefix": append(append(append(append(bytes.Clone(other), prefix...), stale...), tok...), "new stream"...),
	} {
		for _, one := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(in)
			if one {
				r = iotest.OneByteReader(r) // the token split over reads
			}
			left, err := Skip(r, tok)
			if err != nil {
				t.Fatalf("%s (byte by byte %v): %v", name, one, err)
			}
			rest, _ := io.ReadAll(r)
			if got := string(left) + string(rest); got != "new stream" {
				t.Errorf("%s (byte by byte %v): the stream after the token is %q", name, one, got)
			}
		}
	}
	if _, err := Skip(bytes.NewReader(append(stale, tok[:10]...)), tok); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a stream without the token: %v", err)
	}
	if _, err := Skip(iotest.ErrReader(errors.New("boom")), tok); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("a failing reader: %v", err)
	}
	big := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte{'x'}, MaxSkip+(64<<10))), bytes.NewReader(tok))
	if _, err := Skip(big, tok); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("more than MaxSkip before the token: %v", err)
	}
}
