//go:build !linux && !darwin

package container

import "errors"

// physicalMemory is not known on this platform.
func physicalMemory() (uint64, error) {
	return 0, errors.New("not supported on this platform")
}
