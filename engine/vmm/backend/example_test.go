package backend_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/initramfs"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/vmm"
	"github.com/berthvm/berth/engine/vmm/backend"
)

// A micro-VM from the kernel to a running agent: resolve the kernel,
// unwrap it, build the initramfs around guestinit, boot, talk to the
// agent, power off. (Compiled, not run: it needs a guestinit binary and a
// root disk; engine/vmm/qemu's tests run the same steps.)
func ExampleNew() {
	if err := bootDemo(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func bootDemo(ctx context.Context) error {
	k, err := kernel.Resolve(ctx, kernel.Options{CacheDir: "/var/cache/berth/kernel"})
	if err != nil {
		return err
	}
	img, err := k.BootImage(ctx, "/var/cache/berth/boot")
	if err != nil {
		return err
	}
	initrd, err := initramfs.Build(ctx, initramfs.Spec{Init: "bin/guestinit-linux-amd64", Kernel: k, Needs: backend.GuestConfigs(), CacheDir: "/var/cache/berth/initramfs"})
	if err != nil {
		return err
	}
	m, err := backend.New(vmm.Config{
		ID: "demo", StateDir: "/run/berth/demo", Kernel: img, Initramfs: initrd,
		Root: vmm.Disk{Path: "/var/lib/berth/demo/rootfs.ext4"},
		Shutdown: func(ctx context.Context, d transport.Dialer) error {
			c, err := agent.Dial(ctx, d)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Shutdown(ctx, false)
		},
	})
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil { // returns once the agent answers
		return err
	}
	defer m.Kill(ctx) // a no-op once the VM powered off
	c, err := agent.Dial(ctx, m.Dialer())
	if err != nil {
		return err
	}
	defer c.Close()
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	fmt.Println(info.GetKernelRelease(), m.Timeline().AgentReady.Sub(m.Timeline().Launched))
	if err := m.Stop(ctx, 10*time.Second); err != nil {
		return err
	}
	exit, err := m.Wait(ctx)
	if err != nil {
		return err
	}
	fmt.Println(exit.Reason) // poweroff
	return nil
}
