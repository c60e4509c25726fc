package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
)

// The menu bar's status icon is a template image: black with alpha only,
// which macOS tints for the menu bar's appearance (light, dark, selected).
// It is the app icon's motif reduced to shapes that read at 18 points: a
// container on the deck of a ship's hull, above a wave. One variant per engine state,
// named as app/menubar's Icon constants: the plain one (running), a
// hollow container (starting, setting its kernel up) and one struck
// through (not running, no kernel).

// templatePoints is the icon's size in points; @1x is that many pixels,
// @2x twice as many.
const templatePoints = 18

// variant is a status icon's state.
type variant int

const (
	running variant = iota
	starting
	failed
)

// templateNames are the variants' resource names (without .png/@2x.png).
var templateNames = []struct {
	v    variant
	name string
}{
	{running, "berthTemplate"},
	{starting, "berthStartingTemplate"},
	{failed, "berthErrorTemplate"},
}

// writeTemplates writes each variant's @1x and @2x PNG into dir.
func writeTemplates(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("menu bar icons: %w", err)
	}
	for _, t := range templateNames {
		for scale, suffix := range map[int]string{1: ".png", 2: "@2x.png"} {
			var b bytes.Buffer
			if err := png.Encode(&b, drawTemplate(t.v, templatePoints*scale)); err != nil {
				return fmt.Errorf("menu bar icon %s: %w", t.name, err)
			}
			p := filepath.Join(dir, t.name+suffix)
			if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
				return fmt.Errorf("menu bar icon: %w", err)
			}
		}
	}
	return nil
}

// drawTemplate renders variant v at n×n pixels, black with coverage as
// alpha, 4×4 supersampled.
func drawTemplate(v variant, n int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	const ss = 4
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			hits := 0
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					u := (float64(x) + (float64(sx)+0.5)/ss) / float64(n)
					w := (float64(y) + (float64(sy)+0.5)/ss) / float64(n)
					if templateInk(v, u, w) {
						hits++
					}
				}
			}
			if hits > 0 {
				img.SetNRGBA(x, y, color.NRGBA{A: uint8(math.Round(255 * float64(hits) / (ss * ss)))})
			}
		}
	}
	return img
}

// templateInk reports whether (u, v) in [0,1]², y down, is inked.
func templateInk(vr variant, u, v float64) bool {
	// The slash of the failed variant, with a clear margin on each side.
	if vr == failed {
		d := math.Abs((u-0.1)-(v-0.06)) / math.Sqrt2 // distance to the diagonal
		if u > 0.06 && u < 0.94 {
			if d < 0.055 {
				return true
			}
			if d < 0.12 {
				return false
			}
		}
	}
	// The wave: two periods of a sine under the ship.
	if u > 0.04 && u < 0.96 {
		wave := 0.88 + 0.04*math.Sin((u-0.04)/0.92*2*math.Pi*2)
		if math.Abs(v-wave) < 0.045 {
			return true
		}
	}
	// The hull: a trapezoid, the bow (right) raked more than the stern.
	if v > 0.54 && v < 0.74 {
		t := (v - 0.54) / 0.2
		if u > 0.04+0.10*t && u < 0.96-0.16*t {
			return true
		}
	}
	// The container on deck.
	const x0, y0, x1, y1 = 0.2, 0.16, 0.8, 0.46
	if !inRoundRect(u, v, x0, y0, x1, y1, 0.04) {
		return false
	}
	if vr == starting {
		// Hollow: an outline as thick as the wave.
		return !inRoundRect(u, v, x0+0.09, y0+0.09, x1-0.09, y1-0.09, 0.01)
	}
	// Ribs cut out of the box.
	for i := 1; i <= 3; i++ {
		rx := x0 + float64(i)*(x1-x0)/4
		if math.Abs(u-rx) < 0.03 && v > y0+0.08 && v < y1-0.08 {
			return false
		}
	}
	return true
}

// writePreview writes a picture of the variants for people without a Mac:
// each at 4× on a light and on a dark menu-bar strip, the ink tinted as
// macOS tints a template image.
func writePreview(path string) error {
	const scale, pad = 4, 12
	cell := templatePoints * scale
	w := pad + len(templateNames)*(cell+pad)
	h := 2 * (cell + 2*pad)
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	strips := []struct{ bg, ink color.NRGBA }{
		{color.NRGBA{0xec, 0xec, 0xec, 0xff}, color.NRGBA{0x1d, 0x1d, 0x1f, 0xff}},
		{color.NRGBA{0x2b, 0x2b, 0x2e, 0xff}, color.NRGBA{0xf5, 0xf5, 0xf7, 0xff}},
	}
	for si, s := range strips {
		top := si * (cell + 2*pad)
		for y := top; y < top+cell+2*pad; y++ {
			for x := 0; x < w; x++ {
				img.SetNRGBA(x, y, s.bg)
			}
		}
		for i, t := range templateNames {
			tpl := drawTemplate(t.v, cell)
			left := pad + i*(cell+pad)
			for y := 0; y < cell; y++ {
				for x := 0; x < cell; x++ {
					a := float64(tpl.NRGBAAt(x, y).A) / 255
					if a == 0 {
						continue
					}
					mix := func(b, i uint8) uint8 { return uint8(math.Round(float64(b)*(1-a) + float64(i)*a)) }
					img.SetNRGBA(left+x, top+pad+y, color.NRGBA{mix(s.bg.R, s.ink.R), mix(s.bg.G, s.ink.G), mix(s.bg.B, s.ink.B), 0xff})
				}
			}
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return fmt.Errorf("icon preview: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("icon preview: %w", err)
	}
	return nil
}
