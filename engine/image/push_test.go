package image

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/testenv"
)

// TestPush: a pulled image pushed under another name to the real
// registry reports each layer (Preparing, Pushing, Pushed), keeps its
// manifest digest, pulls back into a fresh store with the same ID, and is
// recorded among the image's RepoDigests; a second push finds every layer
// there already.
func TestPush(t *testing.T) {
	f := sharedFixture(t)
	s := openTestStore(t)
	ctx := context.Background()
	pulled, err := s.Pull(ctx, f.ref("test/big:1"))
	if err != nil {
		t.Fatal(err)
	}
	target := f.ref("pushed/big:v2")
	if err := s.Tag(ctx, f.ref("test/big:1"), target); err != nil {
		t.Fatal(err)
	}
	var log eventLog
	res, err := s.Push(ctx, target, WithPushProgress(log.add))
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != pulled.Image.Manifest.Digest || res.Tag != "v2" || res.Ref != target || res.Size != pulled.Image.Manifest.Size {
		t.Errorf("push result %+v; want digest %s, tag v2, ref %s", res, pulled.Image.Manifest.Digest, target)
	}
	// The big image's layers are new to pushed/big: read and sent (the
	// registry cannot mount them: no mount was asked for).
	for _, l := range layerDigests(t, f.big) {
		var seq []State
		for _, e := range log.ev {
			if e.Digest == l && (len(seq) == 0 || seq[len(seq)-1] != e.State) {
				seq = append(seq, e.State)
			}
		}
		if strings.Join(stateStrings(seq), ",") != "Preparing,Pushing,Pushed" {
			t.Errorf("layer %s went through %v", l, seq)
		}
	}
	img, err := s.Get(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.reg.Host + "/pushed/big@" + res.Digest.String(); !strings.Contains(strings.Join(img.RepoDigests, ","), want) {
		t.Errorf("RepoDigests after push = %v, want %s among them", img.RepoDigests, want)
	}

	// Pulled back into another store: the same manifest and image.
	s2 := openTestStore(t)
	back, err := s2.Pull(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if back.Digest != res.Digest || back.Image.ID != pulled.Image.ID {
		t.Errorf("pulled back %s (ID %s); pushed %s (ID %s)", back.Digest, back.Image.ID, res.Digest, pulled.Image.ID)
	}

	// Again: every layer is there already.
	var again eventLog
	if _, err := s.Push(ctx, target, WithPushProgress(again.add)); err != nil {
		t.Fatal(err)
	}
	for id, st := range again.last() {
		if st != LayerExists {
			t.Errorf("second push: layer %s ended %q, want %q", id, st, LayerExists)
		}
	}
}

func stateStrings(ss []State) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// TestPushErrors: an image the store lacks is Docker's 404 text; an
// unreachable registry is Unavailable naming it; a registry with auth
// refuses an anonymous push (Unauthorized, saying to log in) and takes
// one with credentials.
func TestPushErrors(t *testing.T) {
	f := sharedFixture(t)
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.Push(ctx, "nosuch/image:1"); !errors.Is(err, errdefs.ErrNotFound) || err.Error() != "No such image: nosuch/image:1" {
		t.Errorf("push of an unknown image: %v", err)
	}
	if _, err := s.Pull(ctx, f.ref("test/busybox:1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, f.ref("test/busybox:1"), "127.0.0.1:1/x:y"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Push(ctx, "127.0.0.1:1/x:y"); !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "registry 127.0.0.1:1 unreachable") {
		t.Errorf("push to an unreachable registry: %v", err)
	}

	reg := testenv.StartAuthRegistry(t, "berth", "s3cret")
	target := reg.Host + "/private/busybox:1"
	if err := s.Tag(ctx, f.ref("test/busybox:1"), target); err != nil {
		t.Fatal(err)
	}
	_, err := s.Push(ctx, target)
	if !errors.Is(err, errdefs.ErrUnauthorized) || !strings.Contains(err.Error(), "docker login "+reg.Host) {
		t.Errorf("anonymous push to a registry with auth: %v", err)
	}
	if _, err := s.Push(ctx, target, WithPushAuth(&authn.Basic{Username: "berth", Password: "s3cret"})); err != nil {
		t.Errorf("push with credentials: %v", err)
	}
}
