// Package agent is the host side of the agent channel: a client for the
// guestinit agent running in each micro-VM. Control calls are ttrpc
// (protocol in agentpb/agent.proto) on transport.AgentPort; each process's
// stdio rides connections of its own, which the guest listens on and
// Attach dials. The transport (vsock, or yamux over virtio-serial) is the
// VMM's choice; this package only sees a transport.Dialer.
//
// # End of stdio streams
//
// No stdio connection is ever half-closed, on any transport: vz's vsock
// connections cannot half-close (a CloseWrite there would close both
// directions and lose a tty's output). Stdin's EOF is carried in-band by
// the protocol, as containerd's CloseIO: at stdin's EOF Attach calls
// CloseStdin with the number of bytes it wrote to the stdin stream, and
// the guest delivers exactly that many bytes to the process before it
// closes the process's stdin, whichever of the stream and the call
// reaches it first. A tty's input is not ended at the client's EOF, as
// in Docker. An output stream ends when the guest closes its connection
// (fully), which it does after the process exited and the stream's last
// byte was written: the host reads every byte, then the end, and finds
// the exit status final.
//
// A container's main process, from a VMM's Dialer:
//
//	c, err := agent.Dial(ctx, dialer)
//	...
//	st, err := c.Run(ctx, &agentpb.CreateProcessRequest{
//		Id:   "main",
//		Args: []string{"/bin/sh", "-c", "echo hi"},
//	}, agent.Stdio{Stdout: os.Stdout, Stderr: os.Stderr})
//	// st.Code is the exit code (128+n for signal n)
package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/errdefs/errgrpc"
)

// Client talks to one guest's agent. It is safe for concurrent use.
type Client struct {
	dialer transport.Dialer
	conn   net.Conn
	tc     *ttrpc.Client
	api    agentpb.AgentClient
	done   chan struct{}
	port   atomic.Uint32
}

// FirstStdioPort is the lowest port NextPort hands out. Each Client
// starts counting at a random point above it, so that two clients of one
// guest (an engine that reconnected) do not reuse each other's ports.
const FirstStdioPort uint32 = 0x10000

// Dial connects to the agent on transport.AgentPort through d and checks
// it with a Ping. While the guest is still booting (nothing listens yet,
// or the Ping fails) it retries until ctx ends, so give ctx the boot
// timeout.
func Dial(ctx context.Context, d transport.Dialer) (*Client, error) {
	delay := 10 * time.Millisecond
	var last error
	for {
		c, err := dialOnce(ctx, d)
		if err == nil {
			return c, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, errdefs.Unavailable(fmt.Errorf("dial agent: %w (last error: %v)", ctx.Err(), last))
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

func dialOnce(ctx context.Context, d transport.Dialer) (*Client, error) {
	conn, err := d.DialPort(ctx, transport.AgentPort)
	if err != nil {
		return nil, err
	}
	c := NewClient(conn, d)
	if err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// NewClient wraps conn, an open connection to the agent port, without
// checking it. d opens the stdio connections (Attach).
func NewClient(conn net.Conn, d transport.Dialer) *Client {
	c := &Client{dialer: d, conn: conn, done: make(chan struct{})}
	c.tc = ttrpc.NewClient(conn, ttrpc.WithOnClose(func() { close(c.done) }))
	c.api = agentpb.NewAgentClient(c.tc)
	c.port.Store(FirstStdioPort + rand.Uint32N(1<<30))
	return c
}

// Close closes the control connection. Processes in the guest keep
// running.
func (c *Client) Close() error { return c.tc.Close() }

// Done is closed when the control connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// NextPort returns a stdio port number this client has not handed out
// before.
func (c *Client) NextPort() uint32 { return c.port.Add(1) }

// fromStatus turns a ttrpc status back into an errdefs-classed error
// naming the call.
func fromStatus(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("agent %s: %w", op, errgrpc.ToNative(err))
}

// Ping checks that the agent answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.api.Ping(ctx, &agentpb.PingRequest{})
	return fromStatus("ping", err)
}

// Version returns guestinit's version string.
func (c *Client) Version(ctx context.Context) (string, error) {
	r, err := c.api.Ping(ctx, &agentpb.PingRequest{})
	if err != nil {
		return "", fromStatus("ping", err)
	}
	return r.Version, nil
}

// Info returns the guest's kernel, addresses and boot timestamps.
func (c *Client) Info(ctx context.Context) (*agentpb.InfoResponse, error) {
	r, err := c.api.Info(ctx, &agentpb.InfoRequest{})
	return r, fromStatus("info", err)
}

// Mount mounts a filesystem inside the container rootfs.
func (c *Client) Mount(ctx context.Context, r *agentpb.MountRequest) error {
	_, err := c.api.Mount(ctx, r)
	return fromStatus("mount "+r.Target, err)
}

// Unmount unmounts target (a path inside the container rootfs); lazy
// detaches it even while busy.
func (c *Client) Unmount(ctx context.Context, target string, lazy bool) error {
	_, err := c.api.Unmount(ctx, &agentpb.UnmountRequest{Target: target, Lazy: lazy})
	return fromStatus("unmount "+target, err)
}

// ConfigureNetwork configures the guest's NIC and the container's
// resolv.conf, hosts and hostname.
func (c *Client) ConfigureNetwork(ctx context.Context, r *agentpb.ConfigureNetworkRequest) error {
	_, err := c.api.ConfigureNetwork(ctx, r)
	return fromStatus("configure network", err)
}

// CreateProcess creates a process; the guest then listens on its stdio
// ports, for Attach.
func (c *Client) CreateProcess(ctx context.Context, r *agentpb.CreateProcessRequest) error {
	_, err := c.api.CreateProcess(ctx, r)
	return fromStatus("create process "+r.Id, err)
}

// StartProcess starts a created process and returns its pid inside the
// container. A missing binary is errdefs.ErrNotFound (report exit 127, as
// Docker does), one that cannot be executed errdefs.ErrPermissionDenied
// (exit 126).
func (c *Client) StartProcess(ctx context.Context, id string) (int, error) {
	r, err := c.api.StartProcess(ctx, &agentpb.StartProcessRequest{Id: id})
	if err != nil {
		return 0, fromStatus("start process "+id, err)
	}
	return int(r.Pid), nil
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	// Code is the exit status, or 128+n after a death by signal n.
	Code int
	// Signal killed the process; 0 when it exited.
	Signal    int
	OOMKilled bool
	ExitedAt  time.Time
}

// WaitProcess blocks until the process exits or ctx ends.
func (c *Client) WaitProcess(ctx context.Context, id string) (ExitStatus, error) {
	r, err := c.api.WaitProcess(ctx, &agentpb.WaitProcessRequest{Id: id})
	if err != nil {
		return ExitStatus{}, fromStatus("wait process "+id, err)
	}
	return ExitStatus{
		Code: int(r.ExitCode), Signal: int(r.Signal), OOMKilled: r.OomKilled,
		ExitedAt: time.Unix(0, r.ExitedAtNs),
	}, nil
}

// SignalProcess delivers signal sig (a Linux signal number; see
// SignalNumber) to the process.
func (c *Client) SignalProcess(ctx context.Context, id string, sig int) error {
	_, err := c.api.SignalProcess(ctx, &agentpb.SignalProcessRequest{Id: id, Signal: int32(sig)})
	return fromStatus("signal process "+id, err)
}

// ResizePty sets the terminal size of a tty process.
func (c *Client) ResizePty(ctx context.Context, id string, rows, cols uint32) error {
	_, err := c.api.ResizePty(ctx, &agentpb.ResizePtyRequest{Id: id, Rows: rows, Cols: cols})
	return fromStatus("resize pty of "+id, err)
}

// CloseStdin ends the process's input now: EOF on a pipe, the terminal's
// EOF character (^D) on a tty. Attach already does it at a pipe's EOF,
// after the bytes it wrote; a caller of CloseStdin makes sure the input
// it wrote has been taken first (the guest may not have read it yet).
func (c *Client) CloseStdin(ctx context.Context, id string) error {
	return c.closeStdin(ctx, id, 0)
}

// closeStdin ends the process's input once the guest has delivered n
// bytes of its stdin stream to it (see agentpb.CloseStdinRequest).
func (c *Client) closeStdin(ctx context.Context, id string, n uint64) error {
	_, err := c.api.CloseStdin(ctx, &agentpb.CloseStdinRequest{Id: id, StdinBytes: n})
	return fromStatus("close stdin of "+id, err)
}

// DeleteProcess forgets an exited (or never started) process.
func (c *Client) DeleteProcess(ctx context.Context, id string) error {
	_, err := c.api.DeleteProcess(ctx, &agentpb.DeleteProcessRequest{Id: id})
	return fromStatus("delete process "+id, err)
}

// Stats reports the guest's cpu time, memory and process count.
func (c *Client) Stats(ctx context.Context) (*agentpb.StatsResponse, error) {
	r, err := c.api.Stats(ctx, &agentpb.StatsRequest{})
	return r, fromStatus("stats", err)
}

// ListProcesses lists the container's processes (docker top).
func (c *Client) ListProcesses(ctx context.Context) ([]*agentpb.ProcessInfo, error) {
	r, err := c.api.ListProcesses(ctx, &agentpb.ListProcessesRequest{})
	if err != nil {
		return nil, fromStatus("list processes", err)
	}
	return r.Processes, nil
}

// EventStream delivers the guest's events; Recv returns an error once ctx
// (given to Events) ends or the guest goes away.
type EventStream interface {
	Recv() (*agentpb.Event, error)
}

// Events subscribes to process exits and OOM kills.
func (c *Client) Events(ctx context.Context) (EventStream, error) {
	s, err := c.api.Events(ctx, &agentpb.EventsRequest{})
	return s, fromStatus("events", err)
}

// SetTime sets the guest's wall clock to t (after a host sleep).
func (c *Client) SetTime(ctx context.Context, t time.Time) error {
	_, err := c.api.SetTime(ctx, &agentpb.SetTimeRequest{UnixNs: t.UnixNano()})
	return fromStatus("set time", err)
}

// FinishRestore completes a guest restored from a template: its clock,
// a CRNG reseed from entropy (host random bytes, at least 32), the
// VM's own MAC address (nil: keep the NIC's) and its root disk of
// rootSize bytes, mounted. It is the first call on a restored guest.
func (c *Client) FinishRestore(ctx context.Context, now time.Time, entropy []byte, mac net.HardwareAddr, rootSize uint64) error {
	req := &agentpb.FinishRestoreRequest{UnixNs: now.UnixNano(), Entropy: entropy, RootSize: rootSize}
	if len(mac) > 0 {
		req.Mac = mac.String()
	}
	_, err := c.api.FinishRestore(ctx, req)
	return fromStatus("finish restore", err)
}

// Shutdown asks the guest to sync, unmount and power off (or reboot). The
// reply comes before the power-off; the VMM sees the VM stop.
func (c *Client) Shutdown(ctx context.Context, reboot bool) error {
	_, err := c.api.Shutdown(ctx, &agentpb.ShutdownRequest{Reboot: reboot})
	if err != nil && errors.Is(err, ttrpc.ErrClosed) {
		return nil // the guest went down before the reply
	}
	return fromStatus("shutdown", err)
}

// AcquireLease has the guest bring its NIC up and get a lease from the
// network's DHCP server (which it then keeps renewing).
func (c *Client) AcquireLease(ctx context.Context, r *agentpb.LeaseRequest) (*agentpb.Lease, error) {
	l, err := c.api.AcquireLease(ctx, r)
	return l, fromStatus("acquire a DHCP lease", err)
}

// ForwardUnix has the guest listen on port for as long as it runs and
// splice each connection made there (Dialer.DialPort) to the unix socket
// at path inside the container rootfs.
func (c *Client) ForwardUnix(ctx context.Context, port uint32, path string) error {
	_, err := c.api.ForwardUnix(ctx, &agentpb.ForwardUnixRequest{Port: port, Path: path})
	return fromStatus("forward "+path, err)
}
