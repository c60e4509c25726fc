//go:build unix

package plugin

import (
	"fmt"
	"os"
	"syscall"
)

// checkOwner refuses a file or directory owned by someone other than
// this user or root.
func checkOwner(fi os.FileInfo, path string) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	if uid := int(st.Uid); uid != 0 && uid != os.Getuid() {
		return fmt.Sprintf("%s is owned by another user (uid %d), not you or root", path, uid)
	}
	return ""
}
