package rootfs

import (
	"errors"
	"io"
)

const (
	readAheadChunk  = 1 << 20
	readAheadChunks = 4
)

// readAhead reads its source in a goroutine, up to readAheadChunks chunks
// ahead of its reader, so that decompressing a layer (which
// go-containerregistry does inside Read) runs on one core while the tar
// is parsed and the image written on another. Close stops the goroutine
// and waits for it, after which the source may be closed.
type readAhead struct {
	full  chan []byte // chunks read, in order
	free  chan []byte // chunks to read into
	stop  chan struct{}
	done  chan struct{}
	err   error  // the source's error, set before full is closed
	chunk []byte // the chunk being consumed
	cur   []byte // its unread part
}

func newReadAhead(src io.Reader) *readAhead {
	ra := &readAhead{
		full: make(chan []byte, readAheadChunks),
		free: make(chan []byte, readAheadChunks+1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range readAheadChunks + 1 {
		ra.free <- nil // allocated on first use: a small layer needs one
	}
	go ra.run(src)
	return ra
}

func (ra *readAhead) run(src io.Reader) {
	defer close(ra.done)
	defer close(ra.full)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ra.stop:
			return
		}
		if b == nil {
			b = make([]byte, readAheadChunk)
		}
		n, err := io.ReadFull(src, b[:cap(b)])
		if n > 0 {
			select {
			case ra.full <- b[:n]:
			case <-ra.stop:
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			ra.err = err
			return
		}
	}
}

// Read implements io.Reader.
func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.chunk != nil {
			ra.free <- ra.chunk[:cap(ra.chunk)]
			ra.chunk = nil
		}
		b, ok := <-ra.full
		if !ok {
			if ra.err == nil {
				return 0, io.ErrClosedPipe
			}
			return 0, ra.err
		}
		ra.chunk, ra.cur = b, b
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops reading ahead and waits for the goroutine to finish its
// current read of the source.
func (ra *readAhead) Close() {
	select {
	case <-ra.stop:
	default:
		close(ra.stop)
	}
	<-ra.done
}
