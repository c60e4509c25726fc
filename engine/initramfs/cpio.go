package initramfs

import (
	"fmt"
	"io"
	"io/fs"
)

// CPIOWriter writes a cpio archive in the "newc" format (SVR4 without
// checksums), the one the kernel unpacks as an initramfs.
type CPIOWriter struct {
	w   io.Writer
	ino uint32
	err error
}

// NewCPIOWriter returns a writer that writes an archive to w. Close writes
// the trailer.
func NewCPIOWriter(w io.Writer) *CPIOWriter { return &CPIOWriter{w: w, ino: 1} }

// Entry is one archive member's header.
type Entry struct {
	// Name is the path inside the archive, without a leading slash.
	Name string
	// Mode holds the type (fs.ModeDir, fs.ModeCharDevice|fs.ModeDevice,
	// fs.ModeSymlink, or none for a regular file) and permissions.
	Mode fs.FileMode
	// Major and Minor are a device node's numbers.
	Major, Minor uint32
	// Size is the length of the data that follows a regular file's (or
	// the target of a symlink's) header.
	Size int64
}

// unix file type bits (S_IF*).
const (
	sIFREG = 0o100000
	sIFDIR = 0o040000
	sIFCHR = 0o020000
	sIFBLK = 0o060000
	sIFLNK = 0o120000
)

func (e Entry) rawMode() (uint32, error) {
	m := uint32(e.Mode.Perm())
	if e.Mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if e.Mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if e.Mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	switch {
	case e.Mode.IsDir():
		return m | sIFDIR, nil
	case e.Mode&fs.ModeCharDevice != 0:
		return m | sIFCHR, nil
	case e.Mode&fs.ModeDevice != 0:
		return m | sIFBLK, nil
	case e.Mode&fs.ModeSymlink != 0:
		return m | sIFLNK, nil
	case e.Mode.IsRegular():
		return m | sIFREG, nil
	}
	return 0, fmt.Errorf("cpio entry %s: unsupported file type %v", e.Name, e.Mode.Type())
}

// WriteHeader writes e's header and name; a regular file's or symlink's
// Size bytes must follow through Write.
func (c *CPIOWriter) WriteHeader(e Entry) error {
	if c.err != nil {
		return c.err
	}
	mode, err := e.rawMode()
	if err != nil {
		return err
	}
	size := e.Size
	if !e.Mode.IsRegular() && e.Mode&fs.ModeSymlink == 0 {
		size = 0
	}
	nlink := 1
	if e.Mode.IsDir() {
		nlink = 2
	}
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, e.Major, e.Minor, len(e.Name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(e.Name + "\x00"))
	c.pad(len(hdr) + len(e.Name) + 1)
	return c.err
}

// WriteFile writes a whole regular file.
func (c *CPIOWriter) WriteFile(name string, perm fs.FileMode, data []byte) error {
	if err := c.WriteHeader(Entry{Name: name, Mode: perm.Perm(), Size: int64(len(data))}); err != nil {
		return err
	}
	c.write(data)
	c.pad(len(data))
	return c.err
}

// WriteFrom writes a regular file of size bytes read from r.
func (c *CPIOWriter) WriteFrom(name string, perm fs.FileMode, size int64, r io.Reader) error {
	if err := c.WriteHeader(Entry{Name: name, Mode: perm.Perm(), Size: size}); err != nil {
		return err
	}
	if c.err == nil {
		n, err := io.CopyN(c.w, r, size)
		if err != nil {
			c.err = fmt.Errorf("cpio entry %s: copied %d of %d bytes: %w", name, n, size, err)
		}
	}
	c.pad(int(size % 4))
	return c.err
}

// Close writes the trailer entry. It does not close the underlying writer.
func (c *CPIOWriter) Close() error {
	return c.WriteHeader(Entry{Name: "TRAILER!!!"})
}

func (c *CPIOWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	_, c.err = c.w.Write(b)
}

// pad writes the zeros that align the stream to 4 bytes after n bytes.
func (c *CPIOWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}
