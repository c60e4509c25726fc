package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestTemplates reads back the menu bar icons writeTemplates wrote: each
// variant at 18 and 36 pixels, black with alpha only (a template image),
// some ink but transparent corners, and the variants differ from each
// other.
func TestTemplates(t *testing.T) {
	dir := t.TempDir()
	if err := writeTemplates(dir); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, tn := range templateNames {
		for name, size := range map[string]int{tn.name + ".png": 18, tn.name + "@2x.png": 36} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if r := img.Bounds(); r != image.Rect(0, 0, size, size) {
				t.Fatalf("%s is %v, want %d×%d", name, r, size, size)
			}
			inked := 0
			var key []byte
			for y := 0; y < size; y++ {
				for x := 0; x < size; x++ {
					r, g, b, a := img.At(x, y).RGBA()
					if r != 0 || g != 0 || b != 0 {
						t.Fatalf("%s: pixel (%d,%d) is not black: %d %d %d", name, x, y, r, g, b)
					}
					if a > 0 {
						inked++
					}
					key = append(key, byte(a>>8))
				}
			}
			if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
				t.Errorf("%s: corner alpha %d, want transparent", name, a)
			}
			if inked < size*size/6 || inked > size*size*2/3 {
				t.Errorf("%s: %d of %d pixels inked", name, inked, size*size)
			}
			if other, dup := seen[string(key)]; dup {
				t.Errorf("%s is the same picture as %s", name, other)
			}
			seen[string(key)] = name
		}
	}
	p := filepath.Join(dir, "preview.png")
	if err := writePreview(p); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() > 20<<10 {
		t.Errorf("preview: %v, %v (want under 20 KB)", fi, err)
	}
}
