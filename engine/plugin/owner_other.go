//go:build !unix

package plugin

import "os"

func checkOwner(os.FileInfo, string) string { return "" }
