package api

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
)

// hijack takes over the connection of an attach or exec-start request, as
// dockerd does: with an Upgrade header it answers 101 UPGRADED, else 200,
// and from then on the connection is a raw stream (multiplexed, with
// 8-byte frame headers, when there is no tty). The returned reader yields
// what the client sends (its stdin).
func hijack(w http.ResponseWriter, r *http.Request, tty bool) (net.Conn, io.Reader, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("connection cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	ctype := "application/vnd.docker.multiplexed-stream"
	if tty {
		ctype = "application/vnd.docker.raw-stream"
	}
	if r.Header.Get("Upgrade") != "" {
		fmt.Fprintf(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", ctype)
	} else {
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n\r\n", ctype)
	}
	var in io.Reader = conn
	if brw.Reader.Buffered() > 0 {
		in = io.MultiReader(io.LimitReader(brw.Reader, int64(brw.Reader.Buffered())), conn)
	}
	return conn, in, nil
}

// hijackStreams hijacks the connection and returns the writers for the
// process's stdout and stderr on it: the raw connection with a tty, else
// Docker's multiplexed frames.
func hijackStreams(w http.ResponseWriter, r *http.Request, tty bool) (conn net.Conn, in io.Reader, stdout, stderr io.Writer, err error) {
	conn, in, err = hijack(w, r, tty)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	stdout, stderr = conn, conn
	if !tty {
		stdout, stderr = newFrameWriters(conn)
	}
	return conn, in, stdout, stderr, nil
}

// frameWriter writes one stream of Docker's multiplexed format: an 8-byte
// header (stream, 0, 0, 0, big-endian length) before each chunk. Writers
// for stdout and stderr share one lock so frames never interleave.
type frameWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	stream byte
}

func newFrameWriters(w io.Writer) (stdout, stderr io.Writer) {
	mu := &sync.Mutex{}
	return &frameWriter{mu: mu, w: w, stream: 1}, &frameWriter{mu: mu, w: w, stream: 2}
}

func (f *frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var hdr [8]byte
	hdr[0] = f.stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(p)))
	if _, err := f.w.Write(hdr[:]); err != nil {
		return 0, err
	}
	return f.w.Write(p)
}

// closeWrite half-closes a hijacked connection where it can.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
