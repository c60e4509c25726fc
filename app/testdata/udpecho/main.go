// Command udpecho is a test fixture for the end-to-end tests: run in a
// container (the busybox image has no UDP server), it answers every
// datagram on each port named in its arguments with "echo:" and the
// datagram.
package main

import (
	"fmt"
	"net"
	"os"
	"sync"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: udpecho PORT...")
		os.Exit(2)
	}
	var wg sync.WaitGroup
	for _, port := range os.Args[1:] {
		pc, err := net.ListenPacket("udp", ":"+port)
		if err != nil {
			fmt.Fprintln(os.Stderr, "udpecho:", err)
			os.Exit(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 65535)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					fmt.Fprintln(os.Stderr, "udpecho:", err)
					return
				}
				if _, err := pc.WriteTo(append([]byte("echo:"), buf[:n]...), from); err != nil {
					fmt.Fprintln(os.Stderr, "udpecho:", err)
				}
			}
		}()
	}
	wg.Wait()
}
