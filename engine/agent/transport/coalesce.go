package transport

import (
	"encoding/binary"
	"io"
)

// yamux writes each data frame as two writes, the 12-byte header and then
// the body. On a virtio-serial port every write is a system call and a
// virtqueue kick — a VM exit — so coalescer joins the two into one.
//
// yamux's header: version (1 byte), type (1), flags (2), stream ID (4),
// length (4). Only a data frame (type 0) with a length is followed by a
// body; window updates, pings and go-aways carry a value, not a body, in
// the length field, and are written through at once.
const (
	yamuxHeaderLen = 12
	yamuxTypeData  = 0
)

type coalescer struct {
	io.ReadWriteCloser
	hdr     [yamuxHeaderLen]byte
	pending bool
	buf     []byte
}

func newCoalescer(c io.ReadWriteCloser) *coalescer { return &coalescer{ReadWriteCloser: c} }

// Write is called only by yamux's single send loop.
func (c *coalescer) Write(p []byte) (int, error) {
	if !c.pending && len(p) == yamuxHeaderLen && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:12]) > 0 {
		copy(c.hdr[:], p)
		c.pending = true
		return len(p), nil
	}
	if !c.pending {
		return c.ReadWriteCloser.Write(p)
	}
	c.pending = false
	c.buf = append(append(c.buf[:0], c.hdr[:]...), p...)
	n, err := c.ReadWriteCloser.Write(c.buf)
	n -= yamuxHeaderLen
	if n < 0 {
		n = 0
	}
	if cap(c.buf) > 1<<20 {
		c.buf = nil
	}
	return n, err
}
