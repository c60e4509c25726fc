// Package client is the Go client of a Berth daemon's API socket.
//
// A Client is Docker's own client (github.com/moby/moby/client) bound to
// the daemon's unix socket, negotiating the API version with it on the
// first request, for everything the Docker Engine API covers; its few
// methods of its own speak Berth's extensions under /berth/ (status,
// kernel, unpack), whose wire types live in engine/api/types.
//
// When no daemon answers on the socket, every call (Docker's and Berth's)
// fails with an error that is ErrNotRunning and errdefs.ErrUnavailable;
// NotRunning finds it in a Docker client error to print its message.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/moby/moby/api/types/common"
	docker "github.com/moby/moby/client"
)

// ErrNotRunning is the class of errors for "no daemon answers on the
// socket"; such errors are also errdefs.ErrUnavailable.
var ErrNotRunning = errors.New("Berth is not running: start it with `berth daemon` or open Berth.app")

// NotRunningError says that no daemon answers on Socket.
type NotRunningError struct{ Socket string }

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("%v (no daemon at %s)", ErrNotRunning, e.Socket)
}

// Is makes the error match ErrNotRunning and errdefs.ErrUnavailable.
func (e *NotRunningError) Is(target error) bool {
	return target == ErrNotRunning || target == errdefs.ErrUnavailable
}

// NotRunning returns the NotRunningError in err's chain, or nil. Docker's
// client wraps a failed connection in words of its own ("error during
// connect: …"); a CLI prints this instead.
func NotRunning(err error) *NotRunningError {
	var nr *NotRunningError
	if errors.As(err, &nr) {
		return nr
	}
	return nil
}

// Client talks to one Berth daemon over its unix socket: the embedded
// Docker client for the Docker Engine API, and its own methods for
// Berth's endpoints.
type Client struct {
	*docker.Client
	socket string
	http   *http.Client
}

// New returns a client for the daemon listening on socket. It connects
// lazily: New fails only for a socket path Docker's client cannot use.
func New(socket string) (*Client, error) {
	dial := dialer(socket)
	dc, err := docker.New(docker.WithHost("unix://"+socket), docker.WithDialContext(dial))
	if err != nil {
		return nil, fmt.Errorf("API client for %s: %w", socket, err)
	}
	return &Client{
		Client: dc,
		socket: socket,
		http:   &http.Client{Transport: &http.Transport{DialContext: dial}},
	}, nil
}

// dialer connects to socket whatever address a request names; a socket
// that is absent or refuses is a NotRunningError.
func dialer(socket string) func(ctx context.Context, _, _ string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "unix", socket)
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &NotRunningError{Socket: socket}
		}
		return c, err
	}
}

// Socket is the socket path the client dials.
func (c *Client) Socket() string { return c.socket }

// Close releases the client's idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return c.Client.Close()
}

// Status returns the daemon's status (GET /berth/status).
func (c *Client) Status(ctx context.Context) (types.Status, error) {
	var st types.Status
	err := c.do(ctx, http.MethodGet, "/berth/status", nil, &st)
	return st, err
}

// Kernel describes the guest kernel the daemon boots (GET /berth/kernel).
func (c *Client) Kernel(ctx context.Context) (types.KernelInfo, error) {
	var k types.KernelInfo
	err := c.do(ctx, http.MethodGet, "/berth/kernel", nil, &k)
	return k, err
}

// SetKernel persists a kernel choice in the daemon's home (PUT
// /berth/kernel) and returns the kernel it now boots.
func (c *Client) SetKernel(ctx context.Context, choice types.KernelChoice) (types.KernelInfo, error) {
	var k types.KernelInfo
	err := c.do(ctx, http.MethodPut, "/berth/kernel", choice, &k)
	return k, err
}

// UnpackImage writes an image's root filesystem as an ext4 file at output
// (absolute, on the daemon's machine); size 0 sizes it to fit (POST
// /berth/images/unpack).
func (c *Client) UnpackImage(ctx context.Context, image, output string, size int64) error {
	return c.do(ctx, http.MethodPost, "/berth/images/unpack", types.UnpackRequest{Image: image, Output: output, Size: size}, nil)
}

// OpenTerminal opens a terminal session on a running container (POST
// /berth/containers/{id}/terminals) and returns its ID and the page's
// URL. A missing container is errdefs.ErrNotFound, one that is not
// running errdefs.ErrConflict.
func (c *Client) OpenTerminal(ctx context.Context, containerRef string, req types.TerminalRequest) (types.Terminal, error) {
	var t types.Terminal
	err := c.do(ctx, http.MethodPost, "/berth/containers/"+url.PathEscape(containerRef)+"/terminals", req, &t)
	return t, err
}

// OpenWindow issues a Berth window sign-in (POST /berth/ui) and returns
// the window's URL, whose fragment holds a one-use token good for 2
// minutes.
func (c *Client) OpenWindow(ctx context.Context) (types.Window, error) {
	var w types.Window
	err := c.do(ctx, http.MethodPost, "/berth/ui", nil, &w)
	return w, err
}

// do sends one request to a Berth endpoint with in (when not nil) as its
// JSON body and decodes a JSON answer into out (when not nil). An error
// answer becomes an error of the matching errdefs class carrying the
// daemon's message.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://berth"+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if nr := NotRunning(err); nr != nil {
		return errdefs.Unavailable(nr)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return decodeError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// decodeError turns an error answer into an error of the class its status
// names, with the daemon's message.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e common.ErrorResponse
	msg := string(b)
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	if msg == "" {
		msg = resp.Status
	}
	return errdefs.WithClass(errors.New(msg), errdefs.FromHTTPStatus(resp.StatusCode))
}

// Shares lists a container's run-time shares (GET
// /berth/containers/{id}/shares).
func (c *Client) Shares(ctx context.Context, containerRef string) ([]types.Share, error) {
	var out []types.Share
	err := c.do(ctx, http.MethodGet, "/berth/containers/"+url.PathEscape(containerRef)+"/shares", nil, &out)
	return out, err
}

// AddShare shares a host folder into a container (POST
// /berth/containers/{id}/shares) and returns the share as recorded, with
// its target.
func (c *Client) AddShare(ctx context.Context, containerRef string, s types.Share) (types.Share, error) {
	var out types.Share
	err := c.do(ctx, http.MethodPost, "/berth/containers/"+url.PathEscape(containerRef)+"/shares", s, &out)
	return out, err
}

// RemoveShare stops sharing the folder at target (DELETE
// /berth/containers/{id}/shares?target=).
func (c *Client) RemoveShare(ctx context.Context, containerRef, target string) error {
	return c.do(ctx, http.MethodDelete, "/berth/containers/"+url.PathEscape(containerRef)+"/shares?target="+url.QueryEscape(target), nil, nil)
}

// BuilderStatus describes the image builder (GET /berth/builder).
func (c *Client) BuilderStatus(ctx context.Context) (types.BuilderStatus, error) {
	var st types.BuilderStatus
	err := c.do(ctx, http.MethodGet, "/berth/builder", nil, &st)
	return st, err
}

// StartBuilder starts the image builder unless it runs and waits until
// BuildKit serves (POST /berth/builder/start).
func (c *Client) StartBuilder(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/berth/builder/start", nil, nil)
}

// StopBuilder shuts the image builder's VM down (POST /berth/builder/stop).
func (c *Client) StopBuilder(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/berth/builder/stop", nil, nil)
}

// PruneBuilder empties the build cache (POST /berth/builder/prune).
func (c *Client) PruneBuilder(ctx context.Context) (types.BuilderPrune, error) {
	var p types.BuilderPrune
	err := c.do(ctx, http.MethodPost, "/berth/builder/prune", nil, &p)
	return p, err
}
