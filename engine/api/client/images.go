package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/berthvm/berth/engine/api"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
	mobyimage "github.com/moby/moby/api/types/image"
)

// PullImage pulls ref (for platform, "" for the daemon's default) and
// calls progress for every progress message. An error reported inside the
// stream is returned as an error.
func (c *Client) PullImage(ctx context.Context, ref, platform string, progress func(api.JSONMessage)) error {
	q := url.Values{"fromImage": {ref}}
	if platform != "" {
		q.Set("platform", platform)
	}
	resp, err := c.send(ctx, http.MethodPost, "/images/create", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readJSONMessages(resp.Body, progress)
}

// readJSONMessages decodes a Docker JSON progress stream, stopping at the
// first error message.
func readJSONMessages(r io.Reader, fn func(api.JSONMessage)) error {
	dec := json.NewDecoder(r)
	for {
		var m api.JSONMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read progress: %w", err)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		if fn != nil {
			fn(m)
		}
	}
}

// Images lists the stored images.
func (c *Client) Images(ctx context.Context) ([]mobyimage.Summary, error) {
	var out []mobyimage.Summary
	err := c.do(ctx, http.MethodGet, "/images/json", nil, nil, &out)
	return out, err
}

// InspectImage describes one image by reference or ID.
func (c *Client) InspectImage(ctx context.Context, name string) (mobyimage.InspectResponse, error) {
	var out mobyimage.InspectResponse
	err := c.do(ctx, http.MethodGet, "/images/"+name+"/json", nil, nil, &out)
	return out, err
}

// RemoveImage untags or deletes an image, as docker rmi does.
func (c *Client) RemoveImage(ctx context.Context, name string, force bool) ([]mobyimage.DeleteResponse, error) {
	var out []mobyimage.DeleteResponse
	err := c.do(ctx, http.MethodDelete, "/images/"+name, url.Values{"force": {strconv.FormatBool(force)}}, nil, &out)
	return out, err
}

// TagImage adds the reference target ("repo[:tag]") to source.
func (c *Client) TagImage(ctx context.Context, source, target string) error {
	repo, tag := splitTag(target)
	q := url.Values{"repo": {repo}}
	if tag != "" {
		q.Set("tag", tag)
	}
	return c.do(ctx, http.MethodPost, "/images/"+source+"/tag", q, nil, nil)
}

// splitTag splits "host:5000/app:1" into "host:5000/app" and "1".
func splitTag(ref string) (repo, tag string) {
	for i := len(ref) - 1; i >= 0; i-- {
		switch ref[i] {
		case ':':
			return ref[:i], ref[i+1:]
		case '/':
			return ref, ""
		}
	}
	return ref, ""
}

// PruneImages deletes dangling images (all unused ones with all).
func (c *Client) PruneImages(ctx context.Context, all bool) (mobyimage.PruneReport, error) {
	var out mobyimage.PruneReport
	q := url.Values{}
	if all {
		q.Set("filters", `{"dangling":{"false":true}}`)
	}
	err := c.do(ctx, http.MethodPost, "/images/prune", q, nil, &out)
	return out, err
}

// IsNotFound reports whether err says the thing asked for does not exist.
func IsNotFound(err error) bool { return errors.Is(err, errdefs.ErrNotFound) }

// LoadImages imports a docker save or OCI layout tarball and returns the
// daemon's "Loaded image: …" lines.
func (c *Client) LoadImages(ctx context.Context, r io.Reader) ([]string, error) {
	resp, err := c.send(ctx, http.MethodPost, "/images/load", nil, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var lines []string
	err = readJSONMessages(resp.Body, func(m api.JSONMessage) {
		if m.Stream != "" {
			lines = append(lines, m.Stream)
		}
	})
	return lines, err
}

// SaveImages streams a docker save tarball of the named images.
func (c *Client) SaveImages(ctx context.Context, names []string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, "/images/get", url.Values{"names": names}, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// UnpackImage writes an image's root filesystem as an ext4 file at output
// (absolute, on the daemon's machine); size 0 sizes it to fit.
func (c *Client) UnpackImage(ctx context.Context, image, output string, size int64) error {
	b, err := json.Marshal(types.UnpackRequest{Image: image, Output: output, Size: size})
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, "/berth/images/unpack", nil, bytes.NewReader(b), nil)
}
