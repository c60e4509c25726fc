// Command appicon draws Berth's app icon and writes it as an .icns file,
// so Berth.app carries an icon made from this source rather than a
// committed binary:
//
//	go run ./app/appicon -o Berth.app/Contents/Resources/AppIcon.icns [-menubar DIR] [-preview FILE]
//
// -menubar also writes the menu bar's template icons into DIR
// (berthTemplate.png and @2x, and the starting and error variants, see
// menubar.go); -preview writes a PNG picture of them.
//
// The icon is a rounded square in the macOS style (a 824-pixel square on a
// 1024-pixel canvas) holding a container resting on water. Each size is
// drawn on its own, 4×4 supersampled, and stored as PNG, which .icns has
// accepted since OS X 10.7.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
)

func main() {
	out := flag.String("o", "AppIcon.icns", "the .icns file to write")
	menubar := flag.String("menubar", "", "also write the menu bar's template icons (PNG, @1x and @2x) into this directory")
	preview := flag.String("preview", "", "also write a PNG preview of the menu bar icons to this file")
	flag.Parse()
	err := writeFile(*out)
	if err == nil && *menubar != "" {
		err = writeTemplates(*menubar)
	}
	if err == nil && *preview != "" {
		err = writePreview(*preview)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "appicon: %v\n", err)
		os.Exit(1)
	}
}

func writeFile(path string) error {
	var b bytes.Buffer
	if err := writeICNS(&b); err != nil {
		return fmt.Errorf("draw icon %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write icon: %w", err)
	}
	return nil
}

// entries are the .icns element types this writes, with their pixel
// sizes (Apple's "iconutil" set: 16 to 512 points at 1× and 2×).
var entries = []struct {
	typ  string
	size int
}{
	{"ic11", 32}, {"ic12", 64}, {"ic07", 128}, {"ic13", 256},
	{"ic08", 256}, {"ic14", 512}, {"ic09", 512}, {"ic10", 1024},
}

// writeICNS writes the icon as an .icns container: the "icns" magic and
// total length, then per element its type, length (header included) and
// PNG data, all big-endian.
func writeICNS(w io.Writer) error {
	pngs := map[int][]byte{}
	var body bytes.Buffer
	for _, e := range entries {
		data, ok := pngs[e.size]
		if !ok {
			var b bytes.Buffer
			if err := png.Encode(&b, draw(e.size)); err != nil {
				return err
			}
			data = b.Bytes()
			pngs[e.size] = data
		}
		body.WriteString(e.typ)
		_ = binary.Write(&body, binary.BigEndian, uint32(8+len(data)))
		body.Write(data)
	}
	var head [8]byte
	copy(head[:], "icns")
	binary.BigEndian.PutUint32(head[4:], uint32(8+body.Len()))
	if _, err := w.Write(head[:]); err != nil {
		return err
	}
	_, err := w.Write(body.Bytes())
	return err
}

// draw renders the icon at n×n pixels.
func draw(n int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	const ss = 4
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					u := (float64(x) + (float64(sx)+0.5)/ss) / float64(n)
					v := (float64(y) + (float64(sy)+0.5)/ss) / float64(n)
					c := shade(u, v)
					r += c.r * c.a
					g += c.g * c.a
					b += c.b * c.a
					a += c.a
				}
			}
			if a == 0 {
				continue
			}
			img.SetNRGBA(x, y, color.NRGBA{
				R: uint8(math.Round(255 * r / a)), G: uint8(math.Round(255 * g / a)),
				B: uint8(math.Round(255 * b / a)), A: uint8(math.Round(255 * a / (ss * ss))),
			})
		}
	}
	return img
}

type rgba struct{ r, g, b, a float64 }

// shade is the icon's colour at (u, v) in [0,1]², y down.
func shade(u, v float64) rgba {
	// The macOS icon grid: a 824/1024 square with corners of radius
	// 185/1024, centred.
	const m, rad = 100.0 / 1024, 185.0 / 1024
	if !inRoundRect(u, v, m, m, 1-m, 1-m, rad) {
		return rgba{}
	}
	// Water: two white waves across the lower part.
	for _, y0 := range []float64{0.68, 0.76} {
		wave := y0 + 0.018*math.Sin((u-m)*2*math.Pi*3)
		if math.Abs(v-wave) < 0.018 && u > 0.2 && u < 0.8 {
			return rgba{1, 1, 1, 1}
		}
	}
	// The container: an orange box with ribs, resting on the water.
	if inRoundRect(u, v, 0.27, 0.36, 0.73, 0.62, 0.02) {
		for i := 1; i < 6; i++ {
			if math.Abs(u-(0.27+float64(i)*0.46/6)) < 0.012 && v > 0.39 && v < 0.59 {
				return rgba{0.85, 0.42, 0.13, 1}
			}
		}
		return rgba{0.98, 0.55, 0.2, 1}
	}
	// Background: a vertical blue gradient.
	t := (v - m) / (1 - 2*m)
	return rgba{0.10 + 0.02*t, 0.36 - 0.14*t, 0.72 - 0.22*t, 1}
}

// inRoundRect reports whether (u, v) lies in the rectangle (x0,y0)-(x1,y1)
// with corners of radius r.
func inRoundRect(u, v, x0, y0, x1, y1, r float64) bool {
	if u < x0 || u > x1 || v < y0 || v > y1 {
		return false
	}
	cx := math.Max(x0+r, math.Min(u, x1-r))
	cy := math.Max(y0+r, math.Min(v, y1-r))
	return (u-cx)*(u-cx)+(v-cy)*(v-cy) <= r*r
}
