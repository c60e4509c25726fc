// Package kernel carries the pinned default guest kernel's source
// (default.json: a Debian kernel package's URL and SHA-256 per guest
// architecture) into the engine binary. engine/kernel reads it.
package kernel

import _ "embed"

// DefaultJSON is default.json.
//
//go:embed default.json
var DefaultJSON []byte
