package ninep

import (
	"encoding/binary"
	"io"
	"sync"
)

// messageWriter hands each 9P message to w in one Write. p9 writes a
// reply as two or three pieces (header, fixed part, payload); on the agent
// transport each Write is a frame of its own, and on a guest under
// emulation every frame costs a wake-up on both sides, so a reply in
// pieces costs two or three times the latency of a reply in one.
//
// It relies on 9P's framing: a message begins with its length (size[4],
// little-endian, counting the length itself). Bytes that cannot start a
// message (a length under the 7-byte header) are passed through.
type messageWriter struct {
	w   io.Writer
	mu  sync.Mutex
	buf []byte
}

// messageHeaderLen is size[4] type[1] tag[2].
const messageHeaderLen = 7

func (m *messageWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.buf) == 0 && len(p) >= 4 && int(binary.LittleEndian.Uint32(p)) == len(p) {
		// A whole message in one piece.
		if _, err := m.w.Write(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	m.buf = append(m.buf, p...)
	for len(m.buf) >= 4 {
		size := int(binary.LittleEndian.Uint32(m.buf))
		if size < messageHeaderLen {
			size = len(m.buf) // not a message: pass it on
		}
		if len(m.buf) < size {
			break
		}
		if _, err := m.w.Write(m.buf[:size]); err != nil {
			m.buf = m.buf[:0]
			return 0, err
		}
		m.buf = append(m.buf[:0], m.buf[size:]...)
	}
	if cap(m.buf) > 1<<20 && len(m.buf) == 0 {
		m.buf = nil
	}
	return len(p), nil
}
