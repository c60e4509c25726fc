package vmm_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
)

func TestValidateDefaultsAndErrors(t *testing.T) {
	cfg, err := vmm.Config{ID: "abc", StateDir: "/s", Kernel: "/k", Initramfs: "/i", Root: vmm.Disk{Path: "/r"}, Network: &vmm.Network{}}.Validate("arm64")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CPUs != 2 || cfg.MemoryMiB != 1024 || cfg.Arch != "arm64" || cfg.Network.MAC.String() != vmm.MACFor("abc").String() {
		t.Errorf("defaults: %+v", cfg)
	}
	_, err = vmm.Config{ID: "../x", Shares: []vmm.Share{{Tag: "a"}, {Tag: "a"}}}.Validate("amd64")
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Validate(bad) = %v", err)
	}
	for _, want := range []string{"ID", "StateDir", "Kernel", "Initramfs", "Root", `share tag "a"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestMACFor(t *testing.T) {
	a, b := vmm.MACFor("c1"), vmm.MACFor("c2")
	if a.String() == b.String() || a.String() != vmm.MACFor("c1").String() {
		t.Errorf("MACFor not stable or not distinct: %s %s", a, b)
	}
	if a[0]&0x02 == 0 || a[0]&0x01 != 0 {
		t.Errorf("%s is not a locally administered unicast address", a)
	}
}

func TestConsoleLogPanicInPieces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	c, err := vmm.NewConsoleLog(p)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("boot\n[ 1.0] Kernel panic - not sync"))
	c.Write([]byte("ing: Attempted to kill init! exitcode=0x00000100\n[ 1.1] more"))
	if got := c.Panic(); got != "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100" {
		t.Errorf("Panic() = %q", got)
	}
	if c.FirstOutput().IsZero() {
		t.Error("no first-output time")
	}
	c.Close()
	if b, _ := os.ReadFile(p); !strings.HasPrefix(string(b), "boot\n") {
		t.Errorf("log file = %q", b)
	}
	if tail := c.Tail(20); strings.Contains(tail, "boot") {
		t.Errorf("Tail(20) = %q", tail)
	}
}
