// Package transport is the agent channel's lowest layer: connections
// addressed by port between the host and one guest.
//
// The guest listens and the host dials, on every backend. Two
// implementations carry the same contract: real AF_VSOCK (virtio-vsock on
// Virtualization.framework, vhost-vsock under QEMU) and, where the host has
// no vhost-vsock, one virtio-serial port multiplexed with yamux. Code above
// this package never knows which one it got.
//
// Port numbers follow vsock's: AgentPort carries the ttrpc control API;
// each process's stdio gets ports of its own, named in the CreateProcess
// request.
package transport

import (
	"context"
	"net"
)

// AgentPort is the port the guest's ttrpc agent listens on.
const AgentPort uint32 = 1024

// Dialer opens connections to ports the guest listens on (host side).
type Dialer interface {
	// DialPort connects to port inside the guest. It fails with an error
	// naming the port when nothing listens there or the guest is gone.
	DialPort(ctx context.Context, port uint32) (net.Conn, error)
}

// Listener accepts connections the host opens to one of the guest's ports
// (guest side).
type Listener interface {
	// ListenPort starts accepting connections addressed to port.
	ListenPort(port uint32) (net.Listener, error)
}
