//go:build linux

package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/berthvm/berth/engine/vmm"
)

var _ vmm.HandoverDriver = (*driver)(nil)

// rootNode is the node name of a restorable VM's root disk's raw format
// node (-drive node-name), the node Handover reopens.
const rootNode = "root"

// handoverSeq numbers the file nodes Handover adds (node names are per
// QEMU process; a VM is handed over once, the number only keeps them
// apart in logs).
var handoverSeq atomic.Uint64

// Handover gives a VM restored from a template (Config.Restore) to the
// owner to describes, who has the same layout (TemplateLayout):
//
//   - the root disk: QMP blockdev-add of to.Root's file, blockdev-reopen
//     of the raw node rootNode with that file as its child (the
//     virtio-blk device keeps its backend; the old file is closed), then
//     block_resize to the file's size, which tells the guest the new
//     capacity (the agent's FinishRestore waits for it and drops the
//     buffer cache of the old disk before it mounts the new one);
//   - the pid file moves to to.StateDir, under to.ID;
//   - the network plan, the agent hooks and the ID are to's from now on.
//
// The NIC's backend is the caller's (a vmm.Link that starts serving the
// new owner's switch port when told to); the MAC, the clock and the CRNG
// are the agent's FinishRestore's.
func (d *driver) Handover(ctx context.Context, to vmm.Config) error {
	from := d.config()
	if from.Restore == "" {
		return errors.New("only a VM restored from a template can be handed over")
	}
	to.Template, to.Restore = false, from.Restore
	a, err := TemplateLayout(from, d.optionList()...)
	if err != nil {
		return err
	}
	b, err := TemplateLayout(to, d.optionList()...)
	if err != nil {
		return err
	}
	if a != b {
		return errors.New("the new owner's VM layout differs from the VM's")
	}
	q := d.control()
	if q == nil {
		return errors.New("qemu has no QMP connection")
	}
	fi, err := os.Stat(to.Root.Path)
	if err != nil {
		return fmt.Errorf("root disk: %w", err)
	}
	node := rootNode + "-" + strconv.FormatUint(handoverSeq.Add(1), 10)
	if _, err := q.execute(ctx, "blockdev-add", map[string]any{
		"driver": "file", "node-name": node, "filename": to.Root.Path,
		"cache": map[string]any{"direct": false, "no-flush": false}, "discard": "unmap",
	}); err != nil {
		return fmt.Errorf("open root disk %s: %w", to.Root.Path, err)
	}
	if _, err := q.execute(ctx, "blockdev-reopen", map[string]any{"options": []any{map[string]any{
		"driver": "raw", "node-name": rootNode, "file": node, "discard": "unmap",
	}}}); err != nil {
		q.execute(context.Background(), "blockdev-del", map[string]any{"node-name": node})
		return fmt.Errorf("attach root disk %s: %w", to.Root.Path, err)
	}
	if _, err := q.execute(ctx, "block_resize", map[string]any{"device": "disk0", "size": fi.Size()}); err != nil {
		return fmt.Errorf("tell the guest the root disk's size: %w", err)
	}
	d.mu.Lock()
	d.cfg = to
	d.mu.Unlock()
	if err := d.writePidFile(to); err != nil {
		return err
	}
	if from.StateDir != to.StateDir {
		os.Remove(filepath.Join(from.StateDir, PidFileName))
	}
	return nil
}

// optionList is the options the driver was made with, for
// TemplateLayout.
func (d *driver) optionList() []Option {
	o := d.opts
	return []Option{func(p *options) { *p = o }}
}
