package api

import (
	"context"
	"io"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/plugin"
	"github.com/berthvm/berth/engine/share"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// Backend is the engine as the API sees it: one narrow interface per group
// of endpoints, each defined here by what the handlers call and each
// returning values (engine value types, moby types), never the engine's
// managers. The daemon adapts the engine to it; the API's tests serve
// fakes.
type Backend interface {
	System
	// Images serves /images/..., /auth and /berth/images/unpack's lookups.
	Images() Images
	// Containers serves /containers/....
	Containers() Containers
	// Execs serves /containers/{id}/exec and /exec/....
	Execs() Execs
	// Events is the engine's event bus (GET /events; image endpoints
	// publish on it).
	Events() Events
	// Terminals serves /berth/containers/{id}/terminals.
	Terminals() Terminals
	// Volumes serves /volumes/....
	Volumes() Volumes
	// Shares serves /berth/containers/{id}/shares.
	Shares() Shares
	// Networks serves /networks/...; nil where the engine has no
	// networks of its own (macOS: each VM keeps vz's NAT).
	Networks() Networks
	// Builder serves /berth/builder/...; nil where the engine has no
	// image builder.
	Builder() Builder
}

// Shares are containers' run-time shares (engine/container's AddShare,
// Shares and RemoveShare). A missing container is errdefs.ErrNotFound; a
// folder already shared, or a target in use, errdefs.ErrConflict; a
// source that is not a folder errdefs.ErrInvalidArgument.
type Shares interface {
	List(ctx context.Context, ref string) ([]types.Share, error)
	Add(ctx context.Context, ref string, s types.Share) (types.Share, error)
	Remove(ctx context.Context, ref, target string) error
}

// Volumes is the named volume store as the API uses it (engine/share's
// Store). A missing volume is errdefs.ErrNotFound with Docker's text
// ("get NAME: no such volume"); removing one in use is
// errdefs.ErrConflict ("remove NAME: volume is in use - [ID]").
type Volumes interface {
	Create(opts share.CreateOptions) (share.Volume, error)
	Get(name string) (share.Volume, error)
	// List returns every volume.
	List() ([]share.Volume, error)
	// Users are the IDs of the containers that mount the volume.
	Users(name string) []string
	Remove(name string, force bool) error
	// Prune removes the unused volumes match picks.
	Prune(match func(share.Volume) bool) (share.PruneReport, error)
}

// System serves /_ping, /version, /info and Berth's /berth/ endpoints.
type System interface {
	// Status describes the running engine.
	Status(ctx context.Context) (types.Status, error)
	// Kernel describes the guest kernel; SetKernel persists a choice.
	Kernel(ctx context.Context) types.KernelInfo
	SetKernel(ctx context.Context, c types.KernelChoice) (types.KernelInfo, error)
	// Unpack writes an image's root filesystem as an ext4 file.
	Unpack(ctx context.Context, ref, output string, size int64) error
	// Window issues a Berth window sign-in (docs/berth-window.md): the
	// window's URL with a one-use token in its fragment.
	Window(ctx context.Context) (types.Window, error)
	// PluginMenu discovers the plugins as the CLI does and returns the
	// menu entries the CLI plugins declare (plugin.MenuItems).
	PluginMenu(ctx context.Context) []plugin.MenuItem
}

// PullRequest is what POST /images/create asks the image store for.
type PullRequest struct {
	// Ref is the reference to pull ("alpine:3.20", "x@sha256:...").
	Ref string
	// Platform is the platform to pull; nil: the host's.
	Platform *v1.Platform
	// Auth is the registry credential from X-Registry-Auth; nil: anonymous.
	Auth authn.Authenticator
	// Progress receives the pull's progress events.
	Progress func(image.Event)
}

// PushRequest is one POST /images/{name}/push.
type PushRequest struct {
	// Ref is the reference to push ("registry:5000/team/app:1").
	Ref string
	// Auth is the registry credential from X-Registry-Auth; nil: the
	// store's keychain.
	Auth authn.Authenticator
	// Progress receives the push's progress events.
	Progress func(image.Event)
}

// Images is the image store as the API uses it. Errors carry errdefs
// classes; a missing image is errdefs.ErrNotFound with Docker's text
// ("No such image: REF").
type Images interface {
	Pull(ctx context.Context, req PullRequest) (*image.PullResult, error)
	// Push sends a stored image to its registry.
	Push(ctx context.Context, req PushRequest) (*image.PushResult, error)
	List(ctx context.Context) ([]*image.Image, error)
	Get(ctx context.Context, refOrID string) (*image.Image, error)
	Tag(ctx context.Context, source, target string) error
	Remove(ctx context.Context, refOrID string, force bool) ([]image.DeleteItem, error)
	// Prune removes dangling images, or every unused one with all.
	Prune(ctx context.Context, all bool) (image.PruneReport, error)
	// Import reads a `docker save` or OCI layout tarball.
	Import(ctx context.Context, r io.Reader) ([]*image.Image, error)
	// Export writes the images as a `docker save` tarball.
	Export(ctx context.Context, w io.Writer, refsOrIDs ...string) error
	// Login checks credentials against a registry.
	Login(ctx context.Context, server string, auth authn.Authenticator) error
}

// Containers is the container manager as the API uses it. ref is a
// container's ID, ID prefix or name; a missing one is errdefs.ErrNotFound
// with Docker's text ("No such container: REF"). Stop, Start and Kill may
// answer container.ErrNotModified (304).
type Containers interface {
	// Create records a new container and returns its ID.
	Create(ctx context.Context, req container.CreateRequest) (string, error)
	// Inspect returns a consistent copy of a container's spec and state.
	Inspect(ref string) (container.Snapshot, error)
	// List returns the running containers (all: every one) that keep
	// accepts, newest first.
	List(all bool, keep func(container.Snapshot) bool) []container.Snapshot
	Start(ctx context.Context, ref string) error
	Stop(ctx context.Context, ref, signal string, timeout time.Duration) error
	Restart(ctx context.Context, ref string, timeout time.Duration) error
	Kill(ctx context.Context, ref, signal string) error
	Wait(ctx context.Context, ref string, cond container.WaitCondition) (int, error)
	Resize(ctx context.Context, ref string, rows, cols uint32) error
	Rename(ref, name string) error
	// Connect and Disconnect change the network a stopped container
	// joins at its next start (docker network connect, disconnect) and
	// return the network's name; a running one is
	// errdefs.ErrNotImplemented, saying what to do.
	Connect(ref, network string, ep container.Endpoint) (string, error)
	Disconnect(ref, network string) (string, error)
	Remove(ctx context.Context, ref string, opts container.RemoveOptions) error
	// Prune removes the stopped containers keep accepts and returns their
	// IDs.
	Prune(ctx context.Context, keep func(container.Snapshot) bool) ([]string, error)
	Attach(ctx context.Context, ref string, opts container.AttachOptions) error
	Logs(ctx context.Context, ref string, opts container.LogOptions, emit func(container.LogEntry) error) error
	Stats(ctx context.Context, ref string) (mobycontainer.StatsResponse, error)
	// Top lists a running container's processes (docker top) with ps
	// -ef's columns; psArgs other than "" or "-ef" are
	// errdefs.ErrInvalidArgument, a stopped container errdefs.ErrConflict.
	Top(ctx context.Context, ref, psArgs string) (mobycontainer.TopResponse, error)
	// StatPath, ArchivePath and ExtractArchive are docker cp's
	// /containers/{id}/archive (HEAD, GET, PUT) on a running container.
	// A missing path is errdefs.ErrNotFound ("Could not find the file
	// PATH in container NAME"); an archive entry that would land outside
	// the target errdefs.ErrInvalidArgument.
	StatPath(ctx context.Context, ref, path string) (mobycontainer.PathStat, error)
	// ArchivePath writes a tar of path to the writer start returns once
	// the path is found; an error after that means the tar is cut short.
	ArchivePath(ctx context.Context, ref, path string, start func(mobycontainer.PathStat) (io.Writer, error)) error
	ExtractArchive(ctx context.Context, ref, path string, r io.Reader, opts container.ArchiveOptions) error
}

// ExecStart is how an exec session is started.
type ExecStart struct {
	// ConsoleSize, when set, replaces the size given at create (rows, cols).
	ConsoleSize *[2]uint
	// Stdio connects the process; zero for a detached exec.
	Stdio agent.Stdio
}

// Execs are the exec sessions as the API uses them. A missing one is
// errdefs.ErrNotFound ("No such exec instance: ID").
type Execs interface {
	// Create prepares cfg to run in the running container ref and returns
	// the exec's ID.
	Create(ctx context.Context, ref string, cfg container.ExecConfig) (string, error)
	Inspect(id string) (container.ExecState, error)
	// Start runs the exec until it exits and returns its exit code.
	Start(ctx context.Context, id string, opts ExecStart) (int, error)
	Resize(ctx context.Context, id string, rows, cols uint32) error
}

// Events is the engine's event bus.
type Events interface {
	Publish(m events.Message)
	// Subscribe returns the recorded events since (zero: none) that accept
	// passes, and a channel of the new ones until ctx ends.
	Subscribe(ctx context.Context, since time.Time, accept func(events.Message) bool) ([]events.Message, <-chan events.Message)
}

// Terminals opens terminal windows on containers (docs/terminal.md).
type Terminals interface {
	// Open issues a terminal session on the container ref: a missing
	// container is errdefs.ErrNotFound, one that is not running
	// errdefs.ErrConflict.
	Open(ctx context.Context, ref string, req types.TerminalRequest) (types.Terminal, error)
}
