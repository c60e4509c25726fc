package transport

import "os"

func fdFile(fd int) *os.File { return os.NewFile(uintptr(fd), "socketpair") }
