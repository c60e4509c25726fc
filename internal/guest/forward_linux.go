package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
)

func (v *service) ForwardUnix(ctx context.Context, r *agentpb.ForwardUnixRequest) (*agentpb.Empty, error) {
	return empty, v.s.forwardUnix(r)
}

// forwardUnix listens on r.Port and, for every connection the host makes
// there, dials the unix socket r.Path inside the rootfs (resolved then,
// so the socket may appear after the call) and copies bytes both ways
// until either side ends; then it closes both. The listener lasts as
// long as the server.
func (s *Server) forwardUnix(r *agentpb.ForwardUnixRequest) error {
	if r.Port == 0 || r.Port == transport.AgentPort {
		return errdefs.InvalidArgument(fmt.Errorf("forward %s: port %d is not a forwarding port", r.Path, r.Port))
	}
	if !path.IsAbs(r.Path) {
		return errdefs.InvalidArgument(fmt.Errorf("forward to %q: the socket path must be absolute", r.Path))
	}
	rel := strings.TrimPrefix(path.Clean(r.Path), "/")
	if rel == "" {
		return errdefs.InvalidArgument(fmt.Errorf("forward to %q: not a socket path", r.Path))
	}
	s.mu.Lock()
	if s.forwards == nil {
		s.forwards = map[uint32]string{}
	}
	if other, ok := s.forwards[r.Port]; ok {
		s.mu.Unlock()
		return errdefs.AlreadyExists(fmt.Errorf("forward %s: port %d already forwards to %s", r.Path, r.Port, other))
	}
	s.forwards[r.Port] = r.Path
	s.mu.Unlock()
	l, err := s.cfg.Listener.ListenPort(r.Port)
	if err != nil {
		s.mu.Lock()
		delete(s.forwards, r.Port)
		s.mu.Unlock()
		return fmt.Errorf("forward %s: listen on port %d: %w", r.Path, r.Port, err)
	}
	s.goSafe("forward "+r.Path, func() {
		defer l.Close()
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.logger.Printf("forward %s: accept on port %d: %v", r.Path, r.Port, err)
				}
				return
			}
			s.goSafe("forward "+r.Path+" connection", func() { s.spliceUnix(c, rel, r.Path) })
		}
	})
	return nil
}

// spliceUnix connects c to the unix socket rel inside the rootfs.
func (s *Server) spliceUnix(c net.Conn, rel, name string) {
	defer c.Close()
	dir, err := resolveInRoot(s.cfg.Rootfs, filepath.Dir(rel))
	var u net.Conn
	if err == nil {
		u, err = net.Dial("unix", filepath.Join(dir, filepath.Base(rel)))
	}
	if err != nil {
		// Not there yet is what the host's readiness probes meet.
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ECONNREFUSED) {
			s.logger.Printf("forward %s: %v", name, err)
		}
		return
	}
	defer u.Close()
	var once sync.Once
	done := make(chan struct{})
	stop := func() { once.Do(func() { close(done) }) }
	go func() { io.Copy(u, c); stop() }()
	go func() { io.Copy(c, u); stop() }()
	<-done
}
