package agent

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/berthvm/berth/engine/agent/agentpb"
)

// MountOverPort mounts a share served by the host over an agent port (a
// run-time share, MountRequest.port): it gives r a fresh port, sends the
// mount, connects to the port once guestinit listens there, and hands
// the connection to serve (which owns it from then on) before guestinit's
// mount, which needs the server, completes. serve is called at most once;
// when MountOverPort fails after calling it, the caller ends the serving.
//
// source names the share in the guest (its staging tag), from the port.
func (c *Client) MountOverPort(ctx context.Context, r *agentpb.MountRequest, serve func(net.Conn), source func(port uint32) string) error {
	r.Port = c.NextPort()
	r.Source = source(r.Port)
	mounted := make(chan error, 1)
	go func() { mounted <- c.Mount(ctx, r) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := c.dialer.DialPort(ctx, r.Port)
		if err == nil {
			serve(conn)
			return <-mounted
		}
		select {
		case err := <-mounted:
			if err == nil {
				err = fmt.Errorf("mount %s: the guest mounted without the host's server", r.Target)
			}
			return err
		case <-ctx.Done():
			return fmt.Errorf("mount %s: %w", r.Target, ctx.Err())
		case <-tick.C:
		}
	}
}

// UnmountShare unmounts a run-time share's target lazily (it may be
// busy) and then the share's own staged mount (source), which ends its
// connection.
func (c *Client) UnmountShare(ctx context.Context, target, source string) error {
	_, err := c.api.Unmount(ctx, &agentpb.UnmountRequest{Target: target, Lazy: true, ShareSource: source})
	return fromStatus("unmount "+target, err)
}
