//go:build !unix

package image

import "os"

// lockDir opens path; on systems without flock the store is not locked.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
