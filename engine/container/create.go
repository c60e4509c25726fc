package container

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/network"
	"github.com/berthvm/berth/engine/rootfs"
	"github.com/berthvm/berth/engine/share"
	"github.com/berthvm/berth/internal/atomicfile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobyevents "github.com/moby/moby/api/types/events"
	mobynetwork "github.com/moby/moby/api/types/network"
)

// PullPolicy says when Create pulls the image.
type PullPolicy string

// The pull policies of `docker run --pull`.
const (
	PullMissing PullPolicy = "missing"
	PullAlways  PullPolicy = "always"
	PullNever   PullPolicy = "never"
)

// CreateRequest is what Create takes: Docker's container config and host
// config, a name (empty: generated) and the pull policy.
type CreateRequest struct {
	Name       string
	Config     *mobycontainer.Config
	HostConfig *mobycontainer.HostConfig
	Pull       PullPolicy
	// Aliases are the container's names on its network besides its own
	// (--network-alias; compose's service name).
	Aliases []string
	// IP is the address the container asks for on its network (--ip);
	// zero: one from the network's pool.
	IP netip.Addr
	// Progress receives pull progress when Create pulls.
	Progress func(image.Event)
}

// Limits on what a container may ask for.
const (
	minMemory = 64 << 20
	// DefaultMemory and DefaultCPUs size a VM when the container does not
	// say (--memory, --cpus).
	DefaultMemory = 1 << 30
	DefaultCPUs   = 2
)

// Create makes a container: it resolves the image (pulling it when
// missing, unless the policy is never), applies the image's defaults
// (entrypoint, cmd, env, workdir, user) the way Docker does, reserves the
// name, clones the image's base root filesystem (building it on first
// use) and records the container as created.
func (m *Manager) Create(ctx context.Context, req CreateRequest) (*Container, error) {
	if req.Config == nil || req.Config.Image == "" {
		return nil, errdefs.InvalidArgument(errors.New("create container: no image given"))
	}
	if req.HostConfig == nil {
		req.HostConfig = &mobycontainer.HostConfig{}
	}
	if err := validate(req, m.limits); err != nil {
		return nil, err
	}
	if err := checkRestartPolicy(req.HostConfig.RestartPolicy, req.HostConfig.AutoRemove); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("create container: %w", err))
	}
	if (len(req.HostConfig.PortBindings) > 0 || req.HostConfig.PublishAllPorts) && m.networks == nil {
		return nil, errdefs.InvalidArgument(errors.New("create container: publishing ports (-p) needs Berth's networks, which this engine has not got (not on this backend yet): use the container's own IP"))
	}
	mode, err := m.networkMode(req)
	if err != nil {
		return nil, err
	}
	req.HostConfig.NetworkMode = mobycontainer.NetworkMode(mode)
	ref := req.Config.Image
	img, err := m.resolveImage(ctx, ref, req)
	if err != nil {
		return nil, err
	}
	id := NewID()
	spec := Spec{
		ID:            id,
		Created:       time.Now().UTC(),
		Image:         ref,
		ImageID:       img.ID,
		ImageManifest: img.Manifest.Digest.String(),
		Config:        mergeImageConfig(req.Config, img.Config),
		HostConfig:    req.HostConfig,
		Aliases:       req.Aliases,
		IP:            req.IP,
	}
	// Published ports are exposed ones too, as the docker CLI makes
	// them, whatever the client.
	if len(spec.HostConfig.PortBindings) > 0 {
		exposed := mobynetwork.PortSet{}
		maps.Copy(exposed, spec.Config.ExposedPorts)
		for port := range spec.HostConfig.PortBindings {
			exposed[port] = struct{}{}
		}
		spec.Config.ExposedPorts = exposed
	}
	if spec.HostConfig.LogConfig.Type == "" {
		spec.HostConfig.LogConfig.Type = "json-file"
	}
	cmdline := append(append([]string{}, spec.Config.Entrypoint...), spec.Config.Cmd...)
	if len(cmdline) == 0 {
		return nil, errdefs.InvalidArgument(fmt.Errorf("create container from %s: no command specified (the image has no Entrypoint or Cmd)", ref))
	}
	spec.Path, spec.Args = cmdline[0], cmdline[1:]
	if spec.Config.Hostname == "" {
		spec.Config.Hostname = id[:12]
	}

	// Reserve the name before the slow part.
	name, release, err := m.reserveName(strings.TrimPrefix(req.Name, "/"), id)
	if err != nil {
		return nil, err
	}
	spec.Name = name

	// Mounts after the name: a create that fails before here makes no
	// volume.
	if spec.Mounts, err = m.resolveMounts(spec.Config, spec.HostConfig); err != nil {
		release()
		return nil, err
	}

	dir := filepath.Join(m.dir, id)
	c, err := m.materialize(ctx, dir, spec, img)
	if err != nil {
		release()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("create container from %s: %w", ref, err)
	}
	m.mu.Lock()
	m.byID[id] = c
	m.mu.Unlock()
	m.publish(c, mobyevents.ActionCreate, nil)
	return c, nil
}

// reserveName takes name (empty: a random free one) for container id, and
// returns the name and a release that frees it again (for a create that
// fails). A name in use is Docker's conflict.
func (m *Manager) reserveName(name, id string) (string, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if name == "" {
		for {
			name = RandomName()
			if _, taken := m.names[name]; !taken {
				break
			}
		}
	} else if other, taken := m.names[name]; taken {
		return "", nil, errdefs.Conflict(fmt.Errorf("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", "/"+name, other))
	}
	m.names[name] = id
	release := func() {
		m.mu.Lock()
		if m.names[name] == id {
			delete(m.names, name)
		}
		m.mu.Unlock()
	}
	return name, release, nil
}

// materialize writes the container's directory: rootfs clone, config and
// state.
func (m *Manager) materialize(ctx context.Context, dir string, spec Spec, img *image.Image) (*Container, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if m.rootfs == nil {
		return nil, errors.New("no root filesystem cache configured")
	}
	// Checkout keeps the image's blobs while the rootfs is built, even if
	// the image is removed meanwhile.
	vimg, release, err := m.images.Checkout(ctx, img.ID)
	if err != nil {
		return nil, err
	}
	defer release()
	if _, err := m.rootfs.Ensure(ctx, vimg); err != nil {
		return nil, fmt.Errorf("build root filesystem: %w", err)
	}
	d, err := v1.NewHash(spec.ImageManifest)
	if err != nil {
		return nil, err
	}
	base := m.rootfs.Path(d)
	if u := spec.Config.User; u != "" {
		// Resolve USER now, reading the image's /etc/passwd and /etc/group
		// on the host, so a user that does not exist fails the create, as
		// with Docker, not the start.
		if _, _, _, err := rootfs.LookupUser(ctx, base, u); err != nil {
			if errors.Is(err, errdefs.ErrInvalidArgument) {
				return nil, err // runc's text: unable to find user X: no matching entries in passwd file
			}
			return nil, fmt.Errorf("resolve user %s: %w", u, err)
		}
	}
	if err := m.rootfs.Clone(ctx, d, filepath.Join(dir, "rootfs.ext4")); err != nil {
		return nil, err
	}
	c := newContainer(dir, spec, State{Status: mobycontainer.StateCreated})
	if err := atomicfile.WriteJSON(filepath.Join(dir, "config.json"), spec); err != nil {
		return nil, err
	}
	if err := c.saveStateLocked(); err != nil {
		return nil, err
	}
	return c, nil
}

// resolveMounts checks the container's binds and mounts and creates the
// named volumes they use for the first time and an anonymous volume for
// each path in cfg.Volumes (the request's and the image's VOLUME paths)
// that no bind or mount covers (engine/share.Resolve).
func (m *Manager) resolveMounts(cfg *mobycontainer.Config, hc *mobycontainer.HostConfig) ([]share.Mount, error) {
	var anon []string
	for p := range cfg.Volumes {
		anon = append(anon, p)
	}
	sort.Strings(anon)
	var vols share.VolumeCreator
	if m.volumes != nil {
		vols = m.volumes
	}
	return share.Resolve(hc.Binds, hc.Mounts, anon, vols)
}

// resolveImage finds the image locally or pulls it, per the policy.
func (m *Manager) resolveImage(ctx context.Context, ref string, req CreateRequest) (*image.Image, error) {
	if req.Pull != PullAlways {
		img, err := m.images.Get(ctx, ref)
		if err == nil {
			return img, nil
		}
		if !errors.Is(err, errdefs.ErrNotFound) {
			return nil, err
		}
		if req.Pull == PullNever {
			return nil, err
		}
	}
	var opts []image.PullOption
	if req.Progress != nil {
		opts = append(opts, image.WithProgress(req.Progress))
	}
	res, err := m.images.Pull(ctx, ref, opts...)
	if err != nil {
		return nil, err
	}
	return res.Image, nil
}

// hostGateway is --add-host's special address: the host, as the
// container's network reaches it (host.berth.internal).
const hostGateway = "host-gateway"

// networkMode checks the network a create request names and returns
// the mode the container keeps: "default" for the default network,
// "none", or the network's name.
func (m *Manager) networkMode(req CreateRequest) (string, error) {
	mode := string(req.HostConfig.NetworkMode)
	switch {
	case network.IsDefault(mode):
		mode = "default"
	case mode == network.None:
		if len(req.HostConfig.PortBindings) > 0 {
			return "", errdefs.InvalidArgument(errors.New("conflicting options: port publishing and the container type network mode (--network none has no network to publish on)"))
		}
	case m.networks == nil:
		return "", errdefs.InvalidArgument(fmt.Errorf("--network %s: user-defined networks need Berth's networks, which this engine has not got (not on this backend yet): leave --network out", mode))
	default:
		name, err := m.networks.Resolve(mode)
		if err != nil {
			return "", err
		}
		mode = name
	}
	if mode == network.None && len(req.Aliases) > 0 {
		return "", errdefs.InvalidArgument(errors.New("--network-alias needs a network: the container has --network none"))
	}
	if req.IP.IsValid() {
		switch {
		case !req.IP.Is4():
			return "", errdefs.InvalidArgument(fmt.Errorf("--ip %s: Berth's networks are IPv4", req.IP))
		case mode == network.None || mode == "default":
			return "", errdefs.InvalidArgument(fmt.Errorf("--ip %s: user specified IP address is supported on user defined networks only", req.IP))
		}
	}
	for _, a := range req.Aliases {
		if !ValidName(a) {
			return "", errdefs.InvalidArgument(fmt.Errorf("invalid network alias %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", a))
		}
	}
	for _, h := range req.HostConfig.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok || name == "" || (ip != hostGateway && net.ParseIP(ip) == nil) {
			return "", errdefs.InvalidArgument(fmt.Errorf("invalid argument %q for \"--add-host\" flag: want HOST:IP (or HOST:host-gateway)", h))
		}
		if ip == hostGateway && (mode == network.None || m.networks == nil) {
			return "", errdefs.InvalidArgument(fmt.Errorf("--add-host %s: host-gateway needs the container on a Berth network", h))
		}
	}
	return mode, nil
}

// validate checks the values a user can get wrong, the resources against
// the host's limits.
func validate(req CreateRequest, host HostLimits) error {
	if req.Name != "" && !ValidName(req.Name) {
		return errdefs.InvalidArgument(fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", req.Name))
	}
	if err := validateResources(req.HostConfig, host); err != nil {
		return err
	}
	if _, err := network.FromPortMap(req.HostConfig.PortBindings); err != nil {
		return err
	}
	switch req.Pull {
	case "", PullMissing, PullAlways, PullNever:
	default:
		return errdefs.InvalidArgument(fmt.Errorf("invalid pull policy %q: use missing, always or never", req.Pull))
	}
	for _, e := range req.Config.Env {
		if strings.HasPrefix(e, "=") || e == "" {
			return errdefs.InvalidArgument(fmt.Errorf("invalid environment variable %q", e))
		}
	}
	return nil
}

// mergeImageConfig applies the image's defaults to the container's config
// the way Docker does: the container's Entrypoint replaces the image's
// (and then the image's Cmd is dropped unless the container gives one);
// Cmd, WorkingDir and User default to the image's; Env is the image's
// with the container's overriding by name; labels merge, the container's
// winning.
func mergeImageConfig(cfg *mobycontainer.Config, img *v1.ConfigFile) *mobycontainer.Config {
	out := *cfg
	if img == nil {
		return &out
	}
	ic := img.Config
	if len(out.Entrypoint) == 0 && out.Entrypoint == nil {
		out.Entrypoint = ic.Entrypoint
		if len(out.Cmd) == 0 {
			out.Cmd = ic.Cmd
		}
	}
	if out.WorkingDir == "" {
		out.WorkingDir = ic.WorkingDir
	}
	if out.User == "" {
		out.User = ic.User
	}
	if out.StopSignal == "" {
		out.StopSignal = ic.StopSignal
	}
	out.Env = mergeEnv(ic.Env, cfg.Env)
	if h := ic.Healthcheck; h != nil {
		out.Healthcheck = mergeHealthcheck(cfg.Healthcheck, &mobycontainer.HealthConfig{
			Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries,
		})
	}
	if len(ic.Volumes) > 0 {
		// The image's VOLUME paths join the request's: each becomes an
		// anonymous volume unless a bind or mount covers it.
		vols := map[string]struct{}{}
		for p := range ic.Volumes {
			vols[p] = struct{}{}
		}
		for p := range cfg.Volumes {
			vols[p] = struct{}{}
		}
		out.Volumes = vols
	}
	if len(ic.ExposedPorts) > 0 {
		// The image's EXPOSE joins the request's (--expose): what -P
		// publishes.
		exposed := mobynetwork.PortSet{}
		for p := range ic.ExposedPorts {
			if port, err := mobynetwork.ParsePort(p); err == nil && port.Num() != 0 {
				exposed[port] = struct{}{}
			}
		}
		for p := range cfg.ExposedPorts {
			exposed[p] = struct{}{}
		}
		out.ExposedPorts = exposed
	}
	if len(ic.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range ic.Labels {
			labels[k] = v
		}
		for k, v := range cfg.Labels {
			labels[k] = v
		}
		out.Labels = labels
	}
	return &out
}

// mergeEnv returns base with over's variables replacing those of the same
// name, order kept.
func mergeEnv(base, over []string) []string {
	idx := map[string]int{}
	var out []string
	for _, list := range [][]string{base, over} {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}
