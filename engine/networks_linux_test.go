package engine

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/network"
)

// TestEffectiveCaps reads CapEff from a /proc/PID/status file.
func TestEffectiveCaps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(path, []byte("Name:\tberth\nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eff, err := effectiveCaps(path)
	if err != nil || eff&(1<<capNetAdmin) == 0 {
		t.Errorf("effectiveCaps: %x %v, want CAP_NET_ADMIN set", eff, err)
	}
	if err := os.WriteFile(path, []byte("Name:\tberth\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := effectiveCaps(path); err == nil {
		t.Error("effectiveCaps without CapEff: no error")
	}
}

// TestOpenNetworksModes: no mode and "user" are user mode (the reason
// says when it was asked for); an unknown mode is refused naming the
// ones there are. (Bridge and auto make bridges: the bridge-mode test
// runs them in a network namespace of its own, app's
// TestNetworkBridgeMode.)
func TestOpenNetworksModes(t *testing.T) {
	o := options{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h, err := home.Resolve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for mode, reason := range map[string]string{"": "", NetworkModeUser: "(asked for with --network-mode user)"} {
		o.networkMode = mode
		m, err := openNetworks(h, o)
		if err != nil {
			t.Fatal(err)
		}
		if m.Mode() != network.ModeUser || !strings.HasSuffix(m.ModeReason(), reason) {
			t.Errorf("mode %q: %s: %s", mode, m.Mode(), m.ModeReason())
		}
		m.Close()
	}
	o.networkMode = "host"
	if _, err := openNetworks(h, o); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "it is auto, user or bridge") {
		t.Errorf("mode host: %v", err)
	}
}
