// Package engine assembles Berth's engine from its parts — the image
// store, the event bus and (as they land) root filesystems, micro-VMs and
// containers — on one Berth home. The daemon serves an Engine over the API
// socket; the menu-bar app hosts one in-process.
package engine

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/image"
	moby "github.com/moby/moby/api/types/events"
)

// Engine is Berth's engine on one home.
type Engine struct {
	home   home.Home
	log    *slog.Logger
	events *events.Bus
	images *image.Store
}

// Option configures New.
type Option func(*options)

type options struct {
	log       *slog.Logger
	imageOpts []image.Option
}

// WithLogger sets the engine's logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithImageOptions passes options to the image store (a keychain, insecure
// registries, a transport).
func WithImageOptions(opts ...image.Option) Option {
	return func(o *options) { o.imageOpts = append(o.imageOpts, opts...) }
}

// New opens the engine's state under h: it creates the home if needed and
// opens the image store in h/images.
func New(ctx context.Context, h home.Home, opts ...Option) (*Engine, error) {
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if err := h.Ensure(); err != nil {
		return nil, err
	}
	e := &Engine{home: h, log: o.log, events: events.NewBus()}
	imgOpts := append([]image.Option{
		image.WithRemoveHook(func(id string) {
			e.events.Publish(events.Message{Type: moby.ImageEventType, Action: moby.ActionDelete, Actor: moby.Actor{ID: id}})
		}),
	}, o.imageOpts...)
	st, err := image.Open(h.Path("images"), imgOpts...)
	if err != nil {
		return nil, fmt.Errorf("open engine on %s: %w", h.Dir, err)
	}
	e.images = st
	return e, nil
}

// Home is the engine's home.
func (e *Engine) Home() home.Home { return e.home }

// Images is the image store.
func (e *Engine) Images() *image.Store { return e.images }

// Events is the event bus.
func (e *Engine) Events() *events.Bus { return e.events }

// Close releases what New opened.
func (e *Engine) Close() error { return nil }
