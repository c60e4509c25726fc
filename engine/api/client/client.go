// Package client is the Go client of Berth's API socket, used by the berth
// CLI. It speaks the same HTTP API the docker CLI does.
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
	"github.com/berthvm/berth/engine/version"
	"github.com/moby/moby/api/types/common"
	"github.com/moby/moby/api/types/system"
)

// ErrNotRunning is the class of errors for "no daemon answers on the
// socket"; it is also errdefs.ErrUnavailable.
var ErrNotRunning = errors.New("Berth is not running: start it with `berth daemon` or open Berth.app")

// Client talks to one Berth daemon over its unix socket.
type Client struct {
	socket string
	http   *http.Client
}

// New returns a client for the daemon listening on socket.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Socket is the socket path the client dials.
func (c *Client) Socket() string { return c.socket }

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/_ping", nil, nil, nil)
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (types.Status, error) {
	var st types.Status
	err := c.do(ctx, http.MethodGet, "/berth/status", nil, nil, &st)
	return st, err
}

// Version returns the daemon's Docker-style version block.
func (c *Client) Version(ctx context.Context) (system.VersionResponse, error) {
	var v system.VersionResponse
	err := c.do(ctx, http.MethodGet, "/v"+version.APIVersion+"/version", nil, nil, &v)
	return v, err
}

// do sends one request and decodes a JSON answer into out (when not nil).
// Error answers become errors of the matching errdefs class carrying the
// server's message.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, out any) error {
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// send sends one request and returns a successful response whose body the
// caller must close.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Response, error) {
	u := url.URL{Scheme: "http", Host: "berth", Path: path, RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if isNotRunning(err) {
			return nil, errdefs.Unavailable(fmt.Errorf("%w (no daemon at %s)", ErrNotRunning, c.socket))
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

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

func isNotRunning(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// Kernel describes the guest kernel the daemon boots.
func (c *Client) Kernel(ctx context.Context) (types.KernelInfo, error) {
	var k types.KernelInfo
	err := c.do(ctx, http.MethodGet, "/berth/kernel", nil, nil, &k)
	return k, err
}

// SetKernel persists a kernel choice in the daemon's home.
func (c *Client) SetKernel(ctx context.Context, choice types.KernelChoice) (types.KernelInfo, error) {
	b, err := json.Marshal(choice)
	if err != nil {
		return types.KernelInfo{}, err
	}
	var k types.KernelInfo
	err = c.do(ctx, http.MethodPut, "/berth/kernel", nil, bytes.NewReader(b), &k)
	return k, err
}
