package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// socketPair returns the two ends of an AF_UNIX stream socketpair, the
// stand-in for the virtio-serial byte stream.
func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := fdFile(fd)
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatalf("FileConn: %v", err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

func newMuxPair(t testing.TB, pipe bool) (*MuxDialer, *MuxListener) {
	t.Helper()
	var a, b net.Conn
	if pipe {
		a, b = net.Pipe()
	} else {
		a, b = socketPair(t)
	}
	d, err := NewMuxDialer(a)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewMuxListener(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); l.Close() })
	return d, l
}

// serveReverse answers each connection, after reading it to EOF, with
// the bytes it read in reverse order, then closes it.
func serveReverse(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			b, err := io.ReadAll(c)
			if err != nil {
				return
			}
			for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
				b[i], b[j] = b[j], b[i]
			}
			c.Write(b)
		}()
	}
}

func TestMuxManyStreamsHalfClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		pipe bool
	}{{"socketpair", false}, {"netpipe", true}} {
		t.Run(tc.name, func(t *testing.T) {
			d, ml := newMuxPair(t, tc.pipe)
			l, err := ml.ListenPort(5000)
			if err != nil {
				t.Fatal(err)
			}
			go serveReverse(l)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			const streams = 100
			var wg sync.WaitGroup
			errs := make(chan error, streams)
			for i := range streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- oneReverse(ctx, d, i)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func oneReverse(ctx context.Context, d Dialer, i int) error {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	payload := make([]byte, 1+r.IntN(300<<10))
	for j := range payload {
		payload[j] = byte(r.Uint32())
	}
	c, err := d.DialPort(ctx, 5000)
	if err != nil {
		return fmt.Errorf("stream %d: %w", i, err)
	}
	defer c.Close()
	// Write in random chunks so the writes of many streams interleave.
	for off := 0; off < len(payload); {
		n := min(len(payload)-off, 1+r.IntN(64<<10))
		if _, err := c.Write(payload[off : off+n]); err != nil {
			return fmt.Errorf("stream %d: write: %w", i, err)
		}
		off += n
	}
	if err := CloseWrite(c); err != nil {
		return fmt.Errorf("stream %d: close write: %w", i, err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("stream %d: read: %w", i, err)
	}
	for a, b := 0, len(payload)-1; a < b; a, b = a+1, b-1 {
		payload[a], payload[b] = payload[b], payload[a]
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("stream %d: got %d bytes, want %d (reversed payload); content differs", i, len(got), len(payload))
	}
	return nil
}

func TestMuxRefusedPortNamesPort(t *testing.T) {
	d, _ := newMuxPair(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := d.DialPort(ctx, 4242)
	if err == nil {
		t.Fatal("DialPort to an unbound port succeeded")
	}
	if !strings.Contains(err.Error(), "4242") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("error %q should name port 4242 and say refused", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("refusal took %v, want fast", time.Since(start))
	}
}

func TestMuxListenerCloseFreesPort(t *testing.T) {
	d, ml := newMuxPair(t, false)
	l, err := ml.ListenPort(7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ml.ListenPort(7); err == nil {
		t.Fatal("second ListenPort on a held port succeeded")
	}
	l.Close()
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept on a closed listener succeeded")
	}
	ctx := context.Background()
	if _, err := d.DialPort(ctx, 7); err == nil {
		t.Fatal("DialPort to a closed port succeeded")
	}
	l2, err := ml.ListenPort(7)
	if err != nil {
		t.Fatalf("ListenPort after Close: %v", err)
	}
	defer l2.Close()
}

func TestMuxSessionEndFailsDial(t *testing.T) {
	d, ml := newMuxPair(t, false)
	ml.Close()
	select {
	case <-d.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("host session did not notice the guest end closing")
	}
	if _, err := d.DialPort(context.Background(), 1024); err == nil {
		t.Fatal("DialPort after the session ended succeeded")
	}
}

func TestUnixTransportHalfClose(t *testing.T) {
	u := NewUnix(t.TempDir())
	l, err := u.ListenPort(5000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go serveReverse(l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 10 {
		if err := oneReverse(ctx, u, i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := u.DialPort(ctx, 5001); err == nil || !strings.Contains(err.Error(), "5001") {
		t.Fatalf("DialPort to an unbound port: err = %v, want one naming port 5001", err)
	}
}

// writeCounter records the writes reaching the byte stream.
type writeCounter struct {
	net.Conn
	mu        sync.Mutex
	writes    int
	loneData  int // 12-byte writes that are data headers announcing a body
	bodyBytes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes++
	if len(p) == 12 && p[1] == 0 && binary.BigEndian.Uint32(p[8:]) > 0 {
		w.loneData++
	}
	if len(p) > 12 {
		w.bodyBytes += len(p)
	}
	w.mu.Unlock()
	return w.Conn.Write(p)
}

func TestMuxCoalescesHeaderAndBody(t *testing.T) {
	a, b := socketPair(t)
	wc := &writeCounter{Conn: a}
	d, err := NewMuxDialer(wc)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ml, err := NewMuxListener(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Close()
	l, _ := ml.ListenPort(5000)
	go serveReverse(l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 5 {
		if err := oneReverse(ctx, d, i); err != nil {
			t.Fatal(err)
		}
	}
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if wc.loneData > 0 || wc.bodyBytes == 0 {
		t.Errorf("%d of %d writes were data headers without their body (%d body bytes)", wc.loneData, wc.writes, wc.bodyBytes)
	}
}
