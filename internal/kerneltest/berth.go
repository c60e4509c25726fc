package kerneltest

import (
	"bufio"
	"encoding/binary"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// BerthConfig reads the committed fragment of Berth's own kernel,
// assets/linux/berth-kernel.config (found from the test's directory up to
// the module root): each option it sets, with "n" for "# CONFIG_X is not
// set".
func BerthConfig(t testing.TB) map[string]string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("BerthConfig: no go.mod above the test's directory")
		}
		dir = parent
	}
	p := filepath.Join(dir, "assets", "linux", "berth-kernel.config")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "# "); ok {
			if name, ok = strings.CutSuffix(name, " is not set"); ok && strings.HasPrefix(name, "CONFIG_") {
				cfg[name] = "n"
			}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = strings.Trim(v, `"`)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// FakeBerthTree writes, in dir, the shape `make kernel-berth` leaves:
// boot/vmlinuz-RELEASE (an amd64 bzImage header only: it is no kernel
// and boots nothing) and boot/config-RELEASE holding the options of cfg
// that are set (what the real build's .config has for them), no
// lib/modules. It returns the image's path.
func FakeBerthTree(t testing.TB, dir, release string, cfg map[string]string) string {
	t.Helper()
	boot := filepath.Join(dir, "boot")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 0x400)
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x020f) // boot protocol 2.15
	p := filepath.Join(boot, "vmlinuz-"+release)
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		if v := cfg[k]; v == "n" {
			b.WriteString("# " + k + " is not set\n")
		} else {
			b.WriteString(k + "=" + v + "\n")
		}
	}
	if err := os.WriteFile(filepath.Join(boot, "config-"+release), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
