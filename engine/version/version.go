// Package version holds Berth's version and the Docker Engine API versions
// it speaks.
package version

// Version is Berth's version. Release builds set it with
// -ldflags "-X github.com/berthvm/berth/engine/version.Version=...".
var Version = "0.1.0-dev"

// Commit is the source revision, set like Version.
var Commit = ""

// The range of Docker Engine API versions Berth serves. Clients outside it
// get 400 with Docker's message.
const (
	APIVersion    = "1.47"
	MinAPIVersion = "1.44"
)
