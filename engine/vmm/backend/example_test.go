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
	ctx := context.Background()
	k, err := kernel.Resolve(ctx, kernel.Options{CacheDir: "/var/cache/berth/kernel"})
	if err != nil {
		log.Fatal(err)
	}
	img, _ := k.BootImage(ctx, "/var/cache/berth/boot")
	initrd, _ := initramfs.Build(ctx, initramfs.Spec{Init: "bin/guestinit-linux-amd64", Kernel: k, Needs: backend.GuestConfigs(), CacheDir: "/var/cache/berth/initramfs"})
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
		log.Fatal(err)
	}
	if err := m.Start(ctx); err != nil { // returns once the agent answers
		log.Fatal(err)
	}
	c, _ := agent.Dial(ctx, m.Dialer())
	info, _ := c.Info(ctx)
	fmt.Println(info.GetKernelRelease(), m.Timeline().AgentReady.Sub(m.Timeline().Launched))
	m.Stop(ctx, 10*time.Second)
	exit, _ := m.Wait(ctx)
	fmt.Println(exit.Reason) // poweroff
}
