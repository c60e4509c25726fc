package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// loadOrderPath lists the kernel modules of the initramfs in load order.
// Format: one module per line — its path (absolute, or relative to
// /lib/modules), then optionally module parameters separated by spaces;
// blank lines and lines starting with # are ignored. The initramfs
// builder writes it in modules.dep order (dependencies first), soft
// dependencies included (crc32c_generic before ext4).
const loadOrderPath = "/lib/modules/load.order"

// lateOrderPath lists, in the same format, the modules to load once the
// agent serves (folder sharing and overlay; not needed to boot).
const lateOrderPath = "/lib/modules/late.order"

// moduleEntry is one line of the load order file.
type moduleEntry struct {
	Path   string
	Params string
}

// parseLoadOrder reads a load order file.
func parseLoadOrder(r io.Reader) ([]moduleEntry, error) {
	var out []moduleEntry
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		p := fields[0]
		if !strings.HasPrefix(p, "/") {
			p = "/lib/modules/" + p
		}
		if !strings.Contains(p, ".ko") {
			return nil, fmt.Errorf("%s line %d: %q is not a .ko file", loadOrderPath, n, fields[0])
		}
		out = append(out, moduleEntry{Path: p, Params: strings.Join(fields[1:], " ")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", loadOrderPath, err)
	}
	return out, nil
}
