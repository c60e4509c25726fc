package container

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/share"
)

// TestStartMountsShares: a container's mounts reach the VM as boot-time
// shares and the guest as share mounts (read-only where asked), before
// the root is made read-only; the volume store learns who uses which
// volume; an --rm container's anonymous volume goes with it, a named one
// stays.
func TestStartMountsShares(t *testing.T) {
	l := newLifecycle(t)
	vols, err := share.NewStore(t.TempDir(), share.WithUsers(l.m.VolumeUsers))
	if err != nil {
		t.Fatal(err)
	}
	l.m.volumes = vols
	host := t.TempDir()
	mounts, err := share.Resolve([]string{host + ":/src:ro", "named:/n"}, nil, []string{"/anon"}, vols)
	if err != nil {
		t.Fatal(err)
	}
	c := l.add(t, "m", []string{"echo", "hi"}, func(s *Spec) {
		s.Mounts = mounts
		s.HostConfig.ReadonlyRootfs = true
		s.HostConfig.AutoRemove = true
	})
	if users := l.m.VolumeUsers(); !slices.Equal(users["named"], []string{c.ID()}) || len(users) != 2 {
		t.Errorf("VolumeUsers = %v", users)
	}
	if err := vols.Remove("named", false); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("remove a volume a created container uses: %v", err)
	}
	if err := l.m.Start(context.Background(), "m"); err != nil {
		t.Fatal(err)
	}
	l.waitExit(t, c)
	req := l.vms.requests[0]
	if len(req.Shares) != 3 || req.Shares[0].HostPath != host || !req.Shares[0].ReadOnly || req.Shares[1].Tag != "berth1" || req.Shares[1].ReadOnly {
		t.Errorf("launch shares = %+v", req.Shares)
	}
	g := l.vms.last().guest
	g.mu.Lock()
	got := g.mounts
	g.mu.Unlock()
	if len(got) != 4 {
		t.Fatalf("guest mounts = %+v", got)
	}
	for i, want := range []struct {
		target string
		ro     bool
	}{{"/src", true}, {"/n", false}, {"/anon", false}} {
		m := got[i]
		if !m.Share || m.Source != share.Tag(i) || m.Fstype != "fakefs" || m.Target != want.target || slices.Contains(m.Options, "ro") != want.ro {
			t.Errorf("guest mount %d = %+v, want %s (ro %v)", i, m, want.target, want.ro)
		}
	}
	if got[3].Target != "/" || !slices.Contains(got[3].Options, "ro") {
		t.Errorf("the read-only root must come after the shares: %+v", got[3])
	}
	// --rm: the container goes, and with it its anonymous volume.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := l.m.Get("m"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("--rm container not removed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	vs, err := vols.List()
	if err != nil || len(vs) != 1 || vs[0].Name != "named" {
		t.Errorf("volumes after --rm: %+v, %v", vs, err)
	}
}

// TestRemoveVolumes: docker rm keeps a container's anonymous volume,
// docker rm -v removes it; named volumes stay either way.
func TestRemoveVolumes(t *testing.T) {
	l := newLifecycle(t)
	vols, err := share.NewStore(t.TempDir(), share.WithUsers(l.m.VolumeUsers))
	if err != nil {
		t.Fatal(err)
	}
	l.m.volumes = vols
	for _, c := range []struct {
		name    string
		volumes bool
		left    int
	}{{"keep", false, 2}, {"drop", true, 2}} {
		mounts, err := share.Resolve([]string{"named:/n"}, nil, []string{"/anon"}, vols)
		if err != nil {
			t.Fatal(err)
		}
		l.add(t, c.name, []string{"true"}, func(s *Spec) { s.Mounts = mounts })
		if err := l.m.RemoveWith(context.Background(), c.name, RemoveOptions{Volumes: c.volumes}); err != nil {
			t.Fatal(err)
		}
		vs, err := vols.List()
		if err != nil || len(vs) != c.left {
			t.Errorf("%s: volumes left %+v, %v; want %d", c.name, vs, err, c.left)
		}
	}
}
