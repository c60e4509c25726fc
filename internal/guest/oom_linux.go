package guest

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent/agentpb"
)

// oomLine matches the kernel's report of an OOM kill.
var oomLine = regexp.MustCompile(`(?:Out of memory|Memory cgroup out of memory): Killed process (\d+) \(([^)]*)\)`)

// parseKmsgOOM returns the message of a /dev/kmsg record
// ("prio,seq,usec,flags;text") when it reports an OOM kill.
func parseKmsgOOM(record string) (string, bool) {
	_, text, ok := strings.Cut(record, ";")
	if !ok {
		text = record
	}
	text = strings.TrimSpace(strings.SplitN(text, "\n", 2)[0])
	if !oomLine.MatchString(text) {
		return "", false
	}
	return text, true
}

// watchOOM follows the kernel log from now on and reports each OOM kill.
// The VM is the container, so an OOM kill anywhere in it marks every
// running container's main process OOMKilled, as Docker marks a
// container whose cgroup saw one.
func (s *Server) watchOOM(done <-chan struct{}) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		s.logger.Printf("oom: cannot follow /dev/kmsg: %v (no OOM events)", err)
		return
	}
	f := os.NewFile(uintptr(fd), "/dev/kmsg")
	defer f.Close()
	unix.Seek(fd, 0, unix.SEEK_END)
	go func() { <-done; f.Close() }()
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.EINTR) {
			continue // records were overwritten before we read them
		}
		if err != nil || n <= 0 {
			select {
			case <-done:
				return
			default:
			}
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if msg, ok := parseKmsgOOM(string(buf[:n])); ok {
			s.oomKill(msg)
		}
	}
}

// oomKill marks the running containers OOM-killed and publishes an event,
// naming the container when there is exactly one.
func (s *Server) oomKill(msg string) {
	s.logger.Printf("oom: %s", msg)
	s.mu.Lock()
	var mains []*process
	for id := range s.containers {
		if p := s.procs[id]; p != nil {
			mains = append(mains, p)
		}
	}
	s.mu.Unlock()
	id := ""
	for _, p := range mains {
		p.mu.Lock()
		p.oomKilled = true
		p.mu.Unlock()
		if len(mains) == 1 {
			id = p.id
		}
	}
	s.publish(&agentpb.Event{Kind: agentpb.Event_OOM, Id: id, Message: msg, AtNs: time.Now().UnixNano()})
}
