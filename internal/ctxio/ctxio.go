// Package ctxio makes long copies and hashes honour a context: a reader
// wrapped by NewReader fails with the context's error at its next Read
// once the context ends, so a copy or hash of gigabytes stops within one
// buffer of a cancellation instead of running to the end.
package ctxio

import (
	"context"
	"io"
)

type reader struct {
	ctx context.Context
	r   io.Reader
}

// NewReader returns a reader that reads from r until ctx ends; after that
// every Read returns ctx.Err().
func NewReader(ctx context.Context, r io.Reader) io.Reader {
	return &reader{ctx: ctx, r: r}
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Copy is io.Copy that stops with ctx.Err() when ctx ends.
func Copy(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	return io.Copy(dst, NewReader(ctx, src))
}
