// Command netbench is BenchmarkNetwork's helper, built for the guest
// (the busybox image has nothing to measure TCP with) and used on the
// host side too:
//
//	netbench serve [SINK ECHO] a TCP sink on SINK, :5001 by default
//	                          (reads to EOF, then answers "ok"), and a
//	                          1-byte echo on ECHO, :5002 by default
//	netbench send ADDR BYTES  sends BYTES to a sink, prints the seconds
//	                          until its "ok"
//	netbench ping ADDR N      N times: connect to an echo, 1 byte there
//	                          and back, close; prints the median seconds
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "netbench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 1 && args[0] == "serve":
		return serve(":5001", ":5002")
	case len(args) == 3 && args[0] == "serve":
		return serve(args[1], args[2])
	case len(args) == 3 && args[0] == "send":
		n, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return err
		}
		d, err := send(args[1], n)
		if err != nil {
			return err
		}
		fmt.Printf("%.6f\n", d.Seconds())
		return nil
	case len(args) == 3 && args[0] == "ping":
		n, err := strconv.Atoi(args[2])
		if err != nil {
			return err
		}
		d, err := ping(args[1], n)
		if err != nil {
			return err
		}
		fmt.Printf("%.6f\n", d.Seconds())
		return nil
	}
	return fmt.Errorf("usage: netbench serve [SINK ECHO] | send ADDR BYTES | ping ADDR N")
}

// serve runs the sink and the echo until one fails.
func serve(sinkAddr, echoAddr string) error {
	sink, err := net.Listen("tcp", sinkAddr)
	if err != nil {
		return err
	}
	echo, err := net.Listen("tcp", echoAddr)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() {
		errc <- accept(sink, func(c net.Conn) {
			if _, err := io.Copy(io.Discard, c); err == nil {
				_, _ = c.Write([]byte("ok"))
			}
		})
	}()
	go func() {
		errc <- accept(echo, func(c net.Conn) {
			b := make([]byte, 1)
			for {
				if _, err := io.ReadFull(c, b); err != nil {
					return
				}
				if _, err := c.Write(b); err != nil {
					return
				}
			}
		})
	}()
	return <-errc
}

func accept(ln net.Listener, handle func(net.Conn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// send writes n zero bytes to a sink and waits for its "ok".
func send(addr string, n int64) (time.Duration, error) {
	t0 := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	for left := n; left > 0; {
		chunk := buf
		if left < int64(len(chunk)) {
			chunk = chunk[:left]
		}
		w, err := c.Write(chunk)
		if err != nil {
			return 0, err
		}
		left -= int64(w)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	ack, err := io.ReadAll(c)
	if err != nil {
		return 0, err
	}
	if string(ack) != "ok" {
		return 0, fmt.Errorf("sink at %s answered %q, not ok", addr, ack)
	}
	return time.Since(t0), nil
}

// ping is the median of n connects with a 1-byte round trip.
func ping(addr string, n int) (time.Duration, error) {
	ds := make([]time.Duration, 0, n)
	b := []byte{'x'}
	for i := 0; i < n; i++ {
		t0 := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		if _, err := c.Write(b); err != nil {
			c.Close()
			return 0, err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			c.Close()
			return 0, err
		}
		ds = append(ds, time.Since(t0))
		c.Close()
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}
