// Package web holds Berth's web pages (the terminal window and the Berth
// window) as the bundle `make web` builds from assets/web/src with
// esbuild, embedded in the berth binary with go:embed.
//
// A build without the bundle still compiles: FS then reports ErrNotBuilt,
// and servers answer with a page that says how to build it.
package web

import (
	"embed"
	"errors"
	"io/fs"
)

// dist is the bundle; dist/README.txt is committed so the pattern always
// matches, the rest is build output.
//
//go:embed all:dist
var dist embed.FS

// Entry is the file every page's HTML must load; its presence is what
// "built" means.
const Entry = "index.html"

// ErrNotBuilt says the binary was built without the web bundle.
var ErrNotBuilt = errors.New("the web UI bundle is not in this build of berth: run `make web` (needs Node.js and npm), then rebuild berth")

// FS returns the bundle's files, rooted at the bundle directory, or
// ErrNotBuilt when this binary carries none.
func FS() (fs.FS, error) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, err
	}
	if _, err := fs.Stat(sub, Entry); err != nil {
		return nil, ErrNotBuilt
	}
	return sub, nil
}
