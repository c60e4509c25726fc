package ext4

import (
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

func diskBlocks(fi os.FileInfo) int64 { return fi.Sys().(*syscall.Stat_t).Blocks }

func unixGetxattr(p, name string, buf []byte) (int, error) { return unix.Lgetxattr(p, name, buf) }

func ioMulti(rs ...io.Reader) io.Reader { return io.MultiReader(rs...) }
