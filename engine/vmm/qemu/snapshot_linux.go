//go:build linux

package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/vmm"
)

var _ vmm.Snapshotter = (*driver)(nil)

// TemplateLayout describes everything a VM restored from a template must
// share with it besides the kernel and initramfs contents: the QEMU
// binary (its path, size and modification time: the migration stream is
// QEMU's own), the accelerator and the whole command line with the
// per-VM parts (name, disk paths, MAC, sockets) left out. Two Configs with
// the same layout (and boot files) can use one template. It fails for a
// VM QEMU cannot save or restore here: boot-time shares (a mounted 9p
// share blocks migration) or a vhost-vsock agent channel (its guest CID
// is per VM).
func TemplateLayout(cfg vmm.Config, opt ...Option) (string, error) {
	cfg.Template, cfg.Restore = true, ""
	cfg, err := cfg.Validate(runtime.GOARCH)
	if err != nil {
		return "", err
	}
	var o options
	for _, f := range opt {
		f(&o)
	}
	if cfg.Network != nil && cfg.Network.TAP != "" {
		return "", errdefs.NotImplemented(errors.New("template layout: a NIC on a TAP device (bridge mode) is not restored from templates yet"))
	}
	d := newDriver(cfg, o)
	l := d.plan()
	if l.vsock {
		return "", errdefs.NotImplemented(errors.New("template layout: the vhost-vsock agent channel cannot be restored (its guest CID is per VM)"))
	}
	prog, err := d.program()
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(prog)
	if err != nil {
		return "", fmt.Errorf("template layout: %w", err)
	}
	canon := cfg
	canon.ID = "template"
	canon.StateDir = ""
	canon.Root.Path = "ROOT"
	// The boot files' contents are in the template's key; where a
	// home keeps them is not part of the layout.
	canon.Kernel, canon.Initramfs = "KERNEL", "INITRAMFS"
	canon.Disks = append([]vmm.Disk(nil), cfg.Disks...)
	for i := range canon.Disks {
		canon.Disks[i].Path = fmt.Sprintf("DISK%d", i)
	}
	if n := canon.Network; n != nil {
		// The MAC is set by FinishRestore. The NIC's backend is part of
		// the layout: slirp has state in the migration stream, a
		// switch's socket has none.
		canon.Network = &vmm.Network{MAC: vmm.MACFor("template"), Link: n.Link}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "qemu %s size=%d mtime=%d\n", prog, fi.Size(), fi.ModTime().UnixNano())
	b.WriteString(strings.Join(commandLine(canon, l), "\n"))
	return b.String(), nil
}

// SaveState stops the VM's CPUs and streams its state (RAM, devices) to
// path: QMP stop, then migrate to "exec:cat > FILE" (QEMU 7.2 has no
// file: URI), polled until complete. The file is written next to path
// with mode 0600 and renamed over it. QEMU stays paused.
func (d *driver) SaveState(ctx context.Context, path string) (err error) {
	q := d.control()
	if q == nil {
		return errors.New("qemu has no QMP connection")
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	tmp.Close() // CreateTemp made it 0600; cat > keeps the mode
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := q.execute(ctx, "stop", nil); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if _, err := q.execute(ctx, "migrate", map[string]any{"uri": "exec:cat > " + shellQuote(tmp.Name())}); err != nil {
		return fmt.Errorf("save state to %s: %w", path, err)
	}
	for {
		r, err := q.execute(ctx, "query-migrate", nil)
		if err != nil {
			return fmt.Errorf("save state to %s: %w", path, err)
		}
		var st struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if err := json.Unmarshal(r, &st); err != nil {
			return fmt.Errorf("save state to %s: query-migrate: %w", path, err)
		}
		switch st.Status {
		case "completed":
			if err := os.Rename(tmp.Name(), path); err != nil {
				return fmt.Errorf("save state: %w", err)
			}
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("save state to %s: migration %s: %s", path, st.Status, st.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			q.execute(context.Background(), "migrate_cancel", nil)
			return fmt.Errorf("save state to %s: %w", path, ctx.Err())
		case <-d.Exited():
			return fmt.Errorf("save state to %s: qemu exited", path)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// resume finishes a restore (Config.Restore): it waits for QEMU to load
// the state (query-status "inmigrate", then "paused": the template was
// saved stopped), continues the VM and resizes the root disk to its
// file's size, which tells the guest the capacity its restored virtio
// config does not know (FinishRestore waits for it).
func (d *driver) resume(ctx context.Context, q *qmp) error {
	for {
		st, err := q.status(ctx)
		if err != nil {
			return fmt.Errorf("restore from %s: %w", d.cfg.Restore, err)
		}
		if st == "paused" || st == "running" {
			break
		}
		if st != "inmigrate" && st != "prelaunch" {
			return fmt.Errorf("restore from %s: qemu reports the VM %q", d.cfg.Restore, st)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("restore from %s: %w", d.cfg.Restore, ctx.Err())
		case <-d.Exited():
			return fmt.Errorf("restore from %s: qemu exited while loading it", d.cfg.Restore)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if _, err := q.execute(ctx, "cont", nil); err != nil {
		return fmt.Errorf("restore from %s: %w", d.cfg.Restore, err)
	}
	fi, err := os.Stat(d.cfg.Root.Path)
	if err != nil {
		return fmt.Errorf("restore: root disk: %w", err)
	}
	if _, err := q.execute(ctx, "block_resize", map[string]any{"device": "disk0", "size": fi.Size()}); err != nil {
		return fmt.Errorf("restore: tell the guest the root disk's size: %w", err)
	}
	return nil
}
