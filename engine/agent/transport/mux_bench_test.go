package transport

import (
	"context"
	"io"
	"testing"
)

// BenchmarkMuxThroughput measures one stream's throughput over a
// socketpair: the cost of the yamux layer itself, without a VM.
func BenchmarkMuxThroughput(b *testing.B) {
	d, ml := newMuxPair(b, false)
	l, err := ml.ListenPort(7)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	c, err := d.DialPort(context.Background(), 7)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}
