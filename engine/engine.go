// Package engine assembles Berth's engine from its parts — the image
// store, the event bus and (as they land) root filesystems, micro-VMs and
// containers — on one Berth home. The daemon serves an Engine over the API
// socket; the menu-bar app hosts one in-process.
package engine

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/rootfs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	moby "github.com/moby/moby/api/types/events"
)

// Engine is Berth's engine on one home.
type Engine struct {
	home       home.Home
	log        *slog.Logger
	events     *events.Bus
	images     *image.Store
	rootfs     *rootfs.Cache
	containers *container.Manager
}

// Option configures New.
type Option func(*options)

type options struct {
	log       *slog.Logger
	imageOpts []image.Option
	vms       container.VMLauncher
}

// WithVMLauncher sets how container VMs are booted (default: the
// platform's backend with the resolved kernel and guestinit).
func WithVMLauncher(l container.VMLauncher) Option { return func(o *options) { o.vms = l } }

// WithLogger sets the engine's logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithImageOptions passes options to the image store (a keychain, insecure
// registries, a transport).
func WithImageOptions(opts ...image.Option) Option {
	return func(o *options) { o.imageOpts = append(o.imageOpts, opts...) }
}

// New opens the engine's state under h: it creates the home if needed,
// opens the image store (h/images), the base rootfs cache (h/rootfs) and
// the containers (h/containers), and recovers containers a dead engine
// left running.
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
			go e.pruneBaseImages()
		}),
		image.WithInUse(func(id string) bool { return e.containers != nil && e.containers.InUse(id) }),
	}, o.imageOpts...)
	st, err := image.Open(h.Path("images"), imgOpts...)
	if err != nil {
		return nil, fmt.Errorf("open engine on %s: %w", h.Dir, err)
	}
	e.images = st
	if e.rootfs, err = rootfs.NewCache(h.Path("rootfs")); err != nil {
		return nil, fmt.Errorf("open engine on %s: %w", h.Dir, err)
	}
	sweepOrphanVMs(ctx, h, o.log)
	vms := o.vms
	if vms == nil {
		vms = newVMLauncher(h, o.log)
	}
	e.containers, err = container.NewManager(ctx, container.Config{
		Dir: h.Path("containers"), Images: st, Rootfs: e.rootfs, Events: e.events, VMs: vms, Log: o.log,
	})
	if err != nil {
		return nil, fmt.Errorf("open engine on %s: %w", h.Dir, err)
	}
	return e, nil
}

// pruneBaseImages drops base root filesystems whose image is gone.
func (e *Engine) pruneBaseImages() {
	ctx := context.Background()
	imgs, err := e.images.List(ctx)
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, img := range imgs {
		keep[img.Manifest.Digest.String()] = true
	}
	if _, err := e.rootfs.Prune(ctx, func(d v1.Hash) bool { return keep[d.String()] }); err != nil {
		e.log.Warn("prune base root filesystems", "err", err)
	}
}

// Containers is the container manager.
func (e *Engine) Containers() *container.Manager { return e.containers }

// Rootfs is the base root filesystem cache.
func (e *Engine) Rootfs() *rootfs.Cache { return e.rootfs }

// Home is the engine's home.
func (e *Engine) Home() home.Home { return e.home }

// Images is the image store.
func (e *Engine) Images() *image.Store { return e.images }

// Events is the event bus.
func (e *Engine) Events() *events.Bus { return e.events }

// Close releases what New opened (the image store's lock). Running
// containers are not stopped: the daemon's VMs die with its process.
func (e *Engine) Close() error { return e.images.Close() }
