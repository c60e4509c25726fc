package guest

import (
	"context"
	"errors"
	"io"
	"log"
	"testing"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
)

// TestFinishRestoreRefusals: a guest not booted as a template refuses
// FinishRestore, as does one asked with too little entropy or no time;
// nothing is mounted then.
func TestFinishRestoreRefusals(t *testing.T) {
	plain := &service{s: &Server{logger: log.New(io.Discard, "", 0)}}
	ok := &agentpb.FinishRestoreRequest{UnixNs: 1, Entropy: make([]byte, 32)}
	if _, err := plain.FinishRestore(context.Background(), ok); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("FinishRestore on a guest booted cold: %v, want a conflict", err)
	}
	mounted := 0
	tpl := &service{s: &Server{logger: log.New(io.Discard, "", 0), cfg: Config{MountRoot: func(context.Context, uint64) error { mounted++; return nil }}}}
	for _, r := range []*agentpb.FinishRestoreRequest{
		{UnixNs: 1, Entropy: make([]byte, 31)},
		{UnixNs: 0, Entropy: make([]byte, 32)},
	} {
		if _, err := tpl.FinishRestore(context.Background(), r); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("FinishRestore(%d bytes, time %d): %v, want invalid", len(r.Entropy), r.UnixNs, err)
		}
	}
	if mounted != 0 {
		t.Errorf("the root was mounted %d times by refused calls", mounted)
	}
}
