package vmm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/agent/transport"
)

// MACFor derives a stable, locally administered unicast MAC address from
// a VM's ID, so a container keeps its address across restarts.
func MACFor(id string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("berth-mac\x00" + id))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// DialPing is the default PingFunc: the agent is ready once a connection
// to transport.AgentPort opens.
func DialPing(ctx context.Context, d transport.Dialer) error {
	c, err := d.DialPort(ctx, transport.AgentPort)
	if err != nil {
		return err
	}
	return c.Close()
}

// consoleTail is how much of the console a ConsoleLog keeps in memory.
const consoleTail = 8 << 10

// ConsoleLog receives a VM's console output: it appends it to the log
// file, notes when the first byte came, and keeps the last few KiB for
// error messages and for recognising a kernel panic. Backends copy the
// hypervisor's console stream into it.
type ConsoleLog struct {
	mu    sync.Mutex
	file  *os.File
	first time.Time
	tail  []byte
	panic string
	// panicDone: the panic line has ended.
	panicDone bool
}

// NewConsoleLog opens (appends to) path; "" keeps only the in-memory
// tail.
func NewConsoleLog(path string) (*ConsoleLog, error) {
	c := &ConsoleLog{}
	if path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open console log: %w", err)
		}
		c.file = f
	}
	return c, nil
}

// Write records console output.
func (c *ConsoleLog) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.first.IsZero() {
		c.first = time.Now()
	}
	c.tail = append(c.tail, b...)
	if len(c.tail) > 2*consoleTail {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-consoleTail:]...)
	}
	if !c.panicDone {
		// Keep the panic line up to date until it is complete: it may
		// arrive in pieces.
		if i := bytes.LastIndex(c.tail, []byte("Kernel panic - not syncing")); i >= 0 {
			line := c.tail[i:]
			if j := bytes.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
				c.panicDone = true
			}
			c.panic = strings.TrimSpace(string(line))
		}
	}
	if c.file != nil {
		if _, err := c.file.Write(b); err != nil {
			return 0, fmt.Errorf("write console log: %w", err)
		}
	}
	return len(b), nil
}

// CopyConsole copies a hypervisor's console stream r into w (the
// console log a Driver is started with) until r ends. A failed write
// loses output but never stalls the guest's console.
func CopyConsole(w io.Writer, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// FirstOutput is when the first console byte arrived (zero: none yet).
func (c *ConsoleLog) FirstOutput() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first
}

// Tail returns the last lines of console output, up to about n bytes.
func (c *ConsoleLog) Tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tail
	if len(t) > n {
		t = t[len(t)-n:]
		if i := bytes.IndexByte(t, '\n'); i >= 0 {
			t = t[i+1:]
		}
	}
	return string(t)
}

// Panic returns the "Kernel panic - not syncing: ..." line, if the guest
// printed one.
func (c *ConsoleLog) Panic() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.panic
}

// Retarget sends the output from now on to path (appending; "" keeps
// only the in-memory tail) and closes the file written so far: a VM
// handed over to a new owner (VM.Handover) logs to the new owner's file.
func (c *ConsoleLog) Retarget(path string) error {
	var f *os.File
	if path != "" {
		var err error
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			return fmt.Errorf("open console log: %w", err)
		}
	}
	c.mu.Lock()
	old := c.file
	c.file = f
	c.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close closes the log file.
func (c *ConsoleLog) Close() error {
	c.mu.Lock()
	f := c.file
	c.mu.Unlock()
	if f == nil {
		return nil
	}
	return f.Close()
}

// PingUntil calls ping until it succeeds, gone is closed (the VM ended),
// or ctx ends, backing off from 5 ms to 100 ms between tries; each try
// gets at most 10 s. Backends use it to wait for the agent at boot.
func PingUntil(ctx context.Context, d transport.Dialer, ping PingFunc, gone <-chan struct{}) error {
	if ping == nil {
		ping = DialPing
	}
	delay := 5 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		go func() {
			select {
			case <-gone:
				cancel()
			case <-actx.Done():
			}
		}()
		err := ping(actx, d)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-gone:
			return fmt.Errorf("the VM ended before its agent answered; last ping: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("the agent did not answer: %w; last ping: %w", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}
