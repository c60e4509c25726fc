package main

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"testing"
)

// TestICNS reads back what writeICNS wrote the way an .icns reader does:
// the magic and total length, then each element's type and length, and
// each element's PNG must decode at its type's size with a transparent
// corner (the rounded square) and an opaque centre.
func TestICNS(t *testing.T) {
	var b bytes.Buffer
	if err := writeICNS(&b); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	if string(data[:4]) != "icns" || int(binary.BigEndian.Uint32(data[4:8])) != len(data) {
		t.Fatalf("header %q, length %d, file %d bytes", data[:4], binary.BigEndian.Uint32(data[4:8]), len(data))
	}
	want := map[string]int{}
	for _, e := range entries {
		want[e.typ] = e.size
	}
	seen := map[string]bool{}
	for off := 8; off < len(data); {
		if off+8 > len(data) {
			t.Fatalf("truncated element header at %d", off)
		}
		typ := string(data[off : off+4])
		n := int(binary.BigEndian.Uint32(data[off+4 : off+8]))
		if n < 8 || off+n > len(data) {
			t.Fatalf("element %s at %d: bad length %d", typ, off, n)
		}
		size, ok := want[typ]
		if !ok {
			t.Fatalf("unexpected element %q", typ)
		}
		img, err := png.Decode(bytes.NewReader(data[off+8 : off+n]))
		if err != nil {
			t.Fatalf("element %s: %v", typ, err)
		}
		if r := img.Bounds(); r.Dx() != size || r.Dy() != size {
			t.Errorf("element %s is %v, want %d×%d", typ, r, size, size)
		}
		if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
			t.Errorf("element %s: corner alpha %d, want transparent", typ, a)
		}
		if _, _, _, a := img.At(size/2, size/2).RGBA(); a != 0xffff {
			t.Errorf("element %s: centre alpha %d, want opaque", typ, a)
		}
		seen[typ] = true
		off += n
	}
	if len(seen) != len(entries) {
		t.Errorf("elements %v, want %d", seen, len(entries))
	}
}
