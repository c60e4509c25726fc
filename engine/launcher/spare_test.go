package launcher

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/vmm"
)

// recordLink is a vmm.Link that reports the connection it serves.
type recordLink struct{ served chan net.Conn }

func (r recordLink) ServeStream(conn net.Conn) error {
	r.served <- conn
	return nil
}

// TestSpareLink: a spare VM's NIC carries nothing until the claim, then
// serves the claimer's link with the NIC's connection; a spare that is
// never claimed ends its ServeStream when abandoned.
func TestSpareLink(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	l := newSpareLink()
	done := make(chan error, 1)
	go func() { done <- l.ServeStream(a) }()
	rec := recordLink{served: make(chan net.Conn, 1)}
	select {
	case <-rec.served:
		t.Fatal("served before the claim")
	case err := <-done:
		t.Fatalf("ServeStream ended before the claim: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	l.connect(rec)
	if c := <-rec.served; c != a {
		t.Errorf("the claimer's link served %v, want the NIC's connection", c)
	}
	if err := <-done; err != nil {
		t.Errorf("ServeStream: %v", err)
	}
	l.abandon() // after a claim: nothing to end

	never := newSpareLink()
	go func() { done <- never.ServeStream(a) }()
	never.abandon()
	never.abandon()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeStream of an abandoned spare: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeStream of an abandoned spare did not end")
	}
}

// TestSparesOffAndQuiet: a pool that is off (fast start off, idle 0, a
// backend that cannot hand over) restores nothing and says why; a VM
// with extra disks gets no spare; waitQuiet waits for VM starts and
// template builds to end and spareSettle to pass, and close stops a
// spare still waiting for quiet, leaving nothing.
func TestSparesOffAndQuiet(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	tpl := template{key: "0123456789abcdef0123456789abcdef", path: filepath.Join(dir, "t.state")}
	cfg := vmm.Config{ID: "c", StateDir: dir, Kernel: "/k", Initramfs: "/i", Root: vmm.Disk{Path: "/r"}}

	off := newSpares(filepath.Join(dir, "off"), log, time.Minute, errors.New("fast start is off"), func() bool { return false })
	off.refill(cfg, tpl)
	if st := off.status(); len(st) != 0 {
		t.Errorf("a pool that is off restores spares: %+v", st)
	}
	off.close()

	var building atomic.Bool
	building.Store(true)
	p := newSpares(filepath.Join(dir, "on"), log, time.Minute, nil, building.Load)
	disks := cfg
	disks.Disks = []vmm.Disk{{Path: "/d"}}
	p.refill(disks, tpl)
	if st := p.status(); len(st) != 0 {
		t.Errorf("a VM with extra disks got a spare: %+v", st)
	}
	end := p.begin()
	quiet := make(chan error, 1)
	go func() { quiet <- p.waitQuiet() }()
	for _, step := range []func(){end, func() { p.mu.Lock(); p.lastStart = time.Now().Add(-spareSettle); p.mu.Unlock() }} {
		step()
		select {
		case err := <-quiet:
			t.Fatalf("quiet while a template is built: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
	}
	building.Store(false)
	select {
	case err := <-quiet:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not quiet after starts and builds ended")
	}

	// A refill waits for quiet; close ends it with nothing left.
	p.begin()
	p.refill(cfg, tpl)
	if st := p.status(); len(st) != 1 || st[0].State != spareWaiting || st[0].Template != tpl.key {
		t.Errorf("status of a spare waiting for quiet: %+v", st)
	}
	p.close()
	if st := p.status(); len(st) != 0 {
		t.Errorf("spares after close: %+v", st)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "on", "*")); len(m) != 0 {
		t.Errorf("close left %q", m)
	}
	if m, err := p.claim(context.Background(), cfg, tpl); m != nil || err != nil {
		t.Errorf("claim on a closed pool: %v, %v", m, err)
	}
	os.RemoveAll(dir)
}
