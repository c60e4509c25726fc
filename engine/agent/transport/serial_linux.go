package transport

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// SerialPortName is the name of the virtio-serial port that carries the
// yamux transport (QEMU: -device virtserialport,name=berth.agent).
const SerialPortName = "berth.agent"

// FindVirtioPort returns the device node (/dev/vportNpM) of the
// virtio-serial port called name. Without udev there is no
// /dev/virtio-ports/NAME, so it looks the name up in
// /sys/class/virtio-ports/*/name.
func FindVirtioPort(name string) (string, error) {
	const class = "/sys/class/virtio-ports"
	ents, err := os.ReadDir(class)
	if err != nil {
		return "", fmt.Errorf("find virtio port %q: %w", name, err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(class, e.Name(), "name"))
		if err != nil {
			continue
		}
		if strings.TrimSpace(string(b)) == name {
			return "/dev/" + e.Name(), nil
		}
	}
	return "", fmt.Errorf("find virtio port %q: none of the %d ports in %s has that name", name, len(ents), class)
}

// OpenVirtioPort opens the virtio-serial port called name for the yamux
// transport's guest end (see OpenVirtioPortPath).
func OpenVirtioPort(name string) (io.ReadWriteCloser, error) {
	p, err := FindVirtioPort(name)
	if err != nil {
		return nil, err
	}
	return OpenVirtioPortPath(p)
}

// OpenVirtioPortPath opens the virtio-serial port device at path. A read
// of a virtio port returns 0 bytes while no host end is connected; the
// returned stream waits instead (polling), so that a yamux session
// survives a host that connects after the guest booted. Only one host
// session per boot is supported: a host that disconnects and reconnects
// would need a fresh yamux session.
func OpenVirtioPortPath(path string) (io.ReadWriteCloser, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open virtio port %s: %w", path, err)
	}
	return &virtioPort{f: f, closed: make(chan struct{})}, nil
}

type virtioPort struct {
	f      *os.File
	once   sync.Once
	closed chan struct{}
}

func (p *virtioPort) Read(b []byte) (int, error) {
	for {
		n, err := p.f.Read(b)
		if n > 0 || !errors.Is(err, io.EOF) {
			return n, err
		}
		select {
		case <-p.closed:
			return 0, io.EOF
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *virtioPort) Write(b []byte) (int, error) { return p.f.Write(b) }

func (p *virtioPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return p.f.Close()
}
