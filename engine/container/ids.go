package container

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"regexp"
)

// NewID returns a random container ID: 64 hex digits, like Docker's.
func NewID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("container ID: crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// validName is Docker's rule for container names.
var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidName reports whether name is acceptable as a container name.
func ValidName(name string) bool { return validName.MatchString(name) }

var (
	adjectives = []string{"agile", "bold", "brave", "calm", "clever", "eager", "fair", "gentle", "happy", "keen", "kind", "lucid", "merry", "nimble", "proud", "quiet", "quick", "sharp", "steady", "swift", "tidy", "vivid", "warm", "witty", "zen"}
	nouns      = []string{"anchor", "bay", "beacon", "buoy", "cove", "dock", "ferry", "harbor", "haven", "hull", "inlet", "jetty", "keel", "lagoon", "mast", "mooring", "pier", "port", "quay", "reef", "sail", "schooner", "skiff", "tide", "wharf"}
)

// RandomName returns a Docker-style generated name ("calm_harbor").
func RandomName() string {
	pick := func(words []string) string {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(words))))
		if err != nil {
			panic(fmt.Sprintf("container name: crypto/rand failed: %v", err))
		}
		return words[n.Int64()]
	}
	return pick(adjectives) + "_" + pick(nouns)
}
