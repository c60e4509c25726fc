package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	mobycontainer "github.com/moby/moby/api/types/container"
)

// ContainerCreate creates a container (the daemon never pulls here: a
// missing image is a not-found error, as with Docker).
func (c *Client) ContainerCreate(ctx context.Context, name string, req mobycontainer.CreateRequest) (string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	var out mobycontainer.CreateResponse
	err = c.do(ctx, http.MethodPost, "/containers/create", q, bytes.NewReader(body), &out)
	return out.ID, err
}

// ContainerStart starts a created or stopped container.
func (c *Client) ContainerStart(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/containers/"+id+"/start", nil, nil, nil)
}

// ContainerStop stops a container: signal ("" for its stop signal), then
// kill after timeout (negative: the daemon's default).
func (c *Client) ContainerStop(ctx context.Context, id, signal string, timeout time.Duration) error {
	q := url.Values{}
	if signal != "" {
		q.Set("signal", signal)
	}
	if timeout >= 0 {
		q.Set("t", strconv.Itoa(int(timeout.Seconds())))
	}
	return c.do(ctx, http.MethodPost, "/containers/"+id+"/stop", q, nil, nil)
}

// ContainerRestart restarts a container.
func (c *Client) ContainerRestart(ctx context.Context, id string, timeout time.Duration) error {
	q := url.Values{}
	if timeout >= 0 {
		q.Set("t", strconv.Itoa(int(timeout.Seconds())))
	}
	return c.do(ctx, http.MethodPost, "/containers/"+id+"/restart", q, nil, nil)
}

// ContainerKill sends a signal to the main process.
func (c *Client) ContainerKill(ctx context.Context, id, signal string) error {
	q := url.Values{}
	if signal != "" {
		q.Set("signal", signal)
	}
	return c.do(ctx, http.MethodPost, "/containers/"+id+"/kill", q, nil, nil)
}

// ContainerRemove removes a container (force: kill it first).
func (c *Client) ContainerRemove(ctx context.Context, id string, force bool) error {
	return c.do(ctx, http.MethodDelete, "/containers/"+id, url.Values{"force": {strconv.FormatBool(force)}}, nil, nil)
}

// ContainerList lists containers (all: not only running), with Docker's
// filters (key → values).
func (c *Client) ContainerList(ctx context.Context, all bool, filters map[string][]string) ([]mobycontainer.Summary, error) {
	q := url.Values{"all": {strconv.FormatBool(all)}}
	if len(filters) > 0 {
		f := map[string]map[string]bool{}
		for k, vs := range filters {
			f[k] = map[string]bool{}
			for _, v := range vs {
				f[k][v] = true
			}
		}
		b, _ := json.Marshal(f)
		q.Set("filters", string(b))
	}
	var out []mobycontainer.Summary
	err := c.do(ctx, http.MethodGet, "/containers/json", q, nil, &out)
	return out, err
}

// ContainerInspectRaw returns a container's inspect JSON as the daemon
// sent it.
func (c *Client) ContainerInspectRaw(ctx context.Context, id string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, "/containers/"+id+"/json", nil, nil, &out)
	return out, err
}

// ContainerInspect decodes a container's inspect JSON.
func (c *Client) ContainerInspect(ctx context.Context, id string) (mobycontainer.InspectResponse, error) {
	var out mobycontainer.InspectResponse
	err := c.do(ctx, http.MethodGet, "/containers/"+id+"/json", nil, nil, &out)
	return out, err
}

// ContainerWait asks the daemon to report when the condition is met. It
// returns once the daemon accepted the request (its headers arrived); the
// channel then delivers the exit code (or the error).
func (c *Client) ContainerWait(ctx context.Context, id, condition string) (<-chan WaitResult, error) {
	q := url.Values{}
	if condition != "" {
		q.Set("condition", condition)
	}
	resp, err := c.send(ctx, http.MethodPost, "/containers/"+id+"/wait", q, nil)
	if err != nil {
		return nil, err
	}
	ch := make(chan WaitResult, 1)
	go func() {
		defer resp.Body.Close()
		var w mobycontainer.WaitResponse
		if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
			ch <- WaitResult{Err: fmt.Errorf("wait for container %s: %w", id, err)}
			return
		}
		r := WaitResult{Code: int(w.StatusCode)}
		if w.Error != nil && w.Error.Message != "" {
			r.Err = fmt.Errorf("%s", w.Error.Message)
		}
		ch <- r
	}()
	return ch, nil
}

// WaitResult is a container's exit as ContainerWait reports it.
type WaitResult struct {
	Code int
	Err  error
}

// ContainerResize sets the main process's terminal size.
func (c *Client) ContainerResize(ctx context.Context, id string, rows, cols uint) error {
	return c.do(ctx, http.MethodPost, "/containers/"+id+"/resize", url.Values{"h": {fmt.Sprint(rows)}, "w": {fmt.Sprint(cols)}}, nil, nil)
}

// ContainerLogs streams a container's logs (multiplexed without a tty).
func (c *Client) ContainerLogs(ctx context.Context, id string, q url.Values) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, "/containers/"+id+"/logs", q, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// ContainerStats returns one stats sample.
func (c *Client) ContainerStats(ctx context.Context, id string) (mobycontainer.StatsResponse, error) {
	var out mobycontainer.StatsResponse
	err := c.do(ctx, http.MethodGet, "/containers/"+id+"/stats", url.Values{"stream": {"false"}}, nil, &out)
	return out, err
}

// ContainerPrune removes all stopped containers.
func (c *Client) ContainerPrune(ctx context.Context) (mobycontainer.PruneReport, error) {
	var out mobycontainer.PruneReport
	err := c.do(ctx, http.MethodPost, "/containers/prune", nil, nil, &out)
	return out, err
}

// ContainerAttach attaches to a container's streams and returns the
// hijacked connection: write stdin to it (CloseWrite at EOF), read the
// output from it (multiplexed without a tty).
func (c *Client) ContainerAttach(ctx context.Context, id string, stdin bool) (*Hijacked, error) {
	q := url.Values{"stream": {"1"}, "stdout": {"1"}, "stderr": {"1"}}
	if stdin {
		q.Set("stdin", "1")
	}
	return c.hijack(ctx, "/containers/"+id+"/attach", q, nil)
}

// ExecCreate prepares a process in a running container.
func (c *Client) ExecCreate(ctx context.Context, id string, req mobycontainer.ExecCreateRequest) (string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	var out mobycontainer.ExecCreateResponse
	err = c.do(ctx, http.MethodPost, "/containers/"+id+"/exec", nil, bytes.NewReader(body), &out)
	return out.ID, err
}

// ExecStart starts an exec and returns its hijacked stream.
func (c *Client) ExecStart(ctx context.Context, execID string, req mobycontainer.ExecStartRequest) (*Hijacked, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if req.Detach {
		return nil, c.do(ctx, http.MethodPost, "/exec/"+execID+"/start", nil, bytes.NewReader(body), nil)
	}
	return c.hijack(ctx, "/exec/"+execID+"/start", nil, body)
}

// ExecInspect reports an exec's state and exit code.
func (c *Client) ExecInspect(ctx context.Context, execID string) (mobycontainer.ExecInspectResponse, error) {
	var out mobycontainer.ExecInspectResponse
	err := c.do(ctx, http.MethodGet, "/exec/"+execID+"/json", nil, nil, &out)
	return out, err
}

// ExecResize sets an exec's terminal size.
func (c *Client) ExecResize(ctx context.Context, execID string, rows, cols uint) error {
	return c.do(ctx, http.MethodPost, "/exec/"+execID+"/resize", url.Values{"h": {fmt.Sprint(rows)}, "w": {fmt.Sprint(cols)}}, nil, nil)
}

// Hijacked is a connection taken over after 101 UPGRADED.
type Hijacked struct {
	Conn   net.Conn
	Reader *bufio.Reader
}

// Read reads the output stream.
func (h *Hijacked) Read(p []byte) (int, error) { return h.Reader.Read(p) }

// Write writes to the process's input.
func (h *Hijacked) Write(p []byte) (int, error) { return h.Conn.Write(p) }

// CloseWrite signals the end of input.
func (h *Hijacked) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection.
func (h *Hijacked) Close() error { return h.Conn.Close() }

// hijack sends a request asking to upgrade the connection and returns it
// after the daemon's 101.
func (c *Client) hijack(ctx context.Context, path string, q url.Values, body []byte) (*Hijacked, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", c.socket)
	if err != nil {
		if isNotRunning(err) {
			return nil, fmt.Errorf("%w (no daemon at %s)", ErrNotRunning, c.socket)
		}
		return nil, err
	}
	u := url.URL{Scheme: "http", Host: "berth", Path: path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		conn.Close()
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "tcp")
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.StatusCode != http.StatusOK {
		defer conn.Close()
		return nil, decodeError(resp)
	}
	return &Hijacked{Conn: conn, Reader: br}, nil
}
