package builder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/image"
	"github.com/berthvm/berth/engine/network"
)

// The builder's network (docs/build.md, "Base images"): a private
// user-mode network of its own, so that no container can reach the
// builder nor the registry of Berth's images on its gateway.
var (
	// DefaultSubnet is the builder network's subnet: a /29 (the gateway
	// .1, the builder .2) next to the default network's 192.168.127.0/24
	// and outside the pool of user networks (192.168.128.0/17). It hides
	// only those eight addresses of the host's networks from the builder.
	DefaultSubnet = netip.MustParsePrefix("192.168.126.0/29")
)

// registryPort is the port of the registry of Berth's images on the
// builder network's gateway.
const registryPort = 5000

// registryHost is the registry of Berth's images as the builder reaches
// it (GATEWAY:PORT), for the subnet.
func registryHost(subnet netip.Prefix) string {
	return net.JoinHostPort(subnet.Masked().Addr().Next().String(), strconv.Itoa(registryPort))
}

// RegistryHost is where the builder reaches the registry of Berth's
// images (GATEWAY:PORT); "" when the builder has no network.
func (m *Manager) RegistryHost() string {
	if m.cfg.Networks == nil {
		return ""
	}
	return registryHost(m.cfg.Subnet)
}

// RegistryStats says what the registry of Berth's images served the
// builder so far (zero without an image store).
func (m *Manager) RegistryStats() image.RegistryStats {
	if m.registry == nil {
		return image.RegistryStats{}
	}
	return m.registry.Stats()
}

// privateNet is the builder's network for one run of its VM, with the
// registry of Berth's images on its gateway.
type privateNet struct {
	net *network.Private
	srv *http.Server
}

// openNetwork opens the builder's network and serves the registry of
// Berth's images on its gateway; nil, nil without Config.Networks.
func (m *Manager) openNetwork() (*privateNet, error) {
	if m.cfg.Networks == nil {
		return nil, nil
	}
	p, err := m.cfg.Networks.OpenPrivate(network.PrivateOptions{Name: "berth-builder", Subnet: m.cfg.Subnet})
	if err != nil {
		return nil, fmt.Errorf("builder network: %w", err)
	}
	pn := &privateNet{net: p}
	if m.registry == nil {
		return pn, nil
	}
	ln, err := p.Listen(registryPort)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("builder network: %w", err)
	}
	pn.srv = &http.Server{Handler: m.registry, ReadHeaderTimeout: 30 * time.Second}
	go pn.srv.Serve(ln)
	return pn, nil
}

// close stops the registry and the network.
func (p *privateNet) close() {
	if p == nil {
		return
	}
	if p.srv != nil {
		p.srv.Close()
	}
	p.net.Close()
}

// LocalBases returns the buildctl arguments that have BuildKit take a
// Dockerfile's base images from Berth's image store rather than from
// their registries: for each image a FROM names (ScanBases: global ARGs
// substituted from buildArgs; scratch, stage names and what it cannot
// work out are left to BuildKit), it
//
//   - looks the image up in the store, for the FROM's platform (its
//     --platform, else platform, else the builder's: linux/<host arch>;
//     platform may list several, "linux/amd64,linux/arm64");
//   - when the store has none under that reference, pulls it with the
//     engine's own pull (the credentials of `berth login`) for that
//     platform;
//   - returns `--opt context:NAME::PLATFORM=docker-image://GATEWAY:PORT/REPO@sha256:…`,
//     BuildKit's named context for that base (its dockerfile frontend
//     keys it by the name as written, familiar, without :latest) pointing
//     at the manifest in the registry of Berth's images that only the
//     builder reaches.
//
// An image the store holds for another platform only is left to
// BuildKit (the store keeps one platform per reference). An image
// neither in the store nor pullable is an error naming it, its FROM line
// and what to do. Without a builder network or an image store it
// returns nothing.
func (m *Manager) LocalBases(ctx context.Context, dockerfile []byte, buildArgs map[string]string, platform string) ([]string, error) {
	if m.cfg.Networks == nil || m.cfg.Images == nil {
		return nil, nil
	}
	targets := []platformSpec{defaultPlatform()}
	if platform != "" {
		targets = targets[:0]
		for _, p := range strings.Split(platform, ",") {
			ps, ok := parsePlatform(strings.TrimSpace(p))
			if !ok {
				return nil, errdefs.InvalidArgument(fmt.Errorf("build platform %q: a platform is os/arch[/variant], as linux/amd64", p))
			}
			targets = append(targets, ps)
		}
	}
	var opts []string
	seen := map[string]bool{}
	for _, target := range targets {
		bases, stages := ScanBases(dockerfile, buildArgs, target.String())
		for _, b := range bases {
			plat := target
			if b.Platform != "" {
				p, ok := parsePlatform(b.Platform)
				if !ok {
					continue
				}
				plat = p
			}
			name, ok := contextName(b.Ref)
			if !ok || stages[strings.ToLower(name)] {
				continue
			}
			key := name + "::" + plat.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			ref, err := m.localBase(ctx, b, plat)
			if err != nil {
				return nil, err
			}
			if ref != "" {
				opts = append(opts, "--opt", "context:"+key+"=docker-image://"+ref)
			}
		}
	}
	return opts, nil
}

// localBase is the reference under which the registry of Berth's images
// serves base b for plat (pulling it into the store first when it is
// not there); "" when the store holds it for another platform only.
func (m *Manager) localBase(ctx context.Context, b BaseRef, plat platformSpec) (string, error) {
	img, err := m.cfg.Images.Get(ctx, b.Ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		m.log.Info("builder: pulling a base image into the image store", "image", b.Ref, "platform", plat.String())
		res, perr := m.cfg.Images.Pull(ctx, b.Ref, image.WithPlatform(plat.v1()))
		if perr != nil {
			return "", baseError(b, plat, perr)
		}
		img, err = res.Image, nil
	}
	if err != nil {
		return "", fmt.Errorf("base image %s (FROM on line %d): %w", b.Ref, b.Line, err)
	}
	if !plat.matches(img.Platform) {
		return "", nil
	}
	repo, err := image.RegistryRepository(b.Ref)
	if err != nil {
		return "", fmt.Errorf("base image %s (FROM on line %d): %w", b.Ref, b.Line, err)
	}
	return registryHost(m.cfg.Subnet) + "/" + repo + "@" + img.Manifest.Digest.String(), nil
}

// baseError explains a base image that is neither in the store nor
// pullable, keeping the pull error's class.
func baseError(b BaseRef, plat platformSpec, err error) error {
	what := "pull it with `berth pull " + b.Ref + "` (after `berth login` if its registry needs credentials), load it with `berth load`, or correct the FROM"
	msg := fmt.Sprintf("base image %s (FROM on line %d, platform %s) is not in Berth's image store and could not be pulled: %v; %s", b.Ref, b.Line, plat, err, what)
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return errdefs.NotFound(errors.New(msg))
	case errors.Is(err, errdefs.ErrUnauthorized):
		return errdefs.Unauthorized(errors.New(msg))
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return errdefs.InvalidArgument(errors.New(msg))
	}
	return errdefs.Unavailable(errors.New(msg))
}

// contextName is the name under which BuildKit's dockerfile frontend
// looks up a named context for a base image ref: the reference
// normalized (docker.io, library/, :latest) and then shown familiar
// (docker.io/library/ dropped), without a trailing ":latest".
func contextName(ref string) (string, bool) {
	if _, err := image.ParseReference(ref); err != nil {
		return "", false
	}
	rest, suffix := ref, ""
	if i := strings.Index(rest, "@"); i >= 0 {
		rest, suffix = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		rest, suffix = rest[:i], rest[i:]+suffix
	}
	if suffix == "" {
		suffix = ":latest"
	}
	domain, path, ok := strings.Cut(rest, "/")
	if !ok || !strings.ContainsAny(domain, ".:") && domain != "localhost" && strings.ToLower(domain) == domain {
		domain, path = "docker.io", rest
	}
	if domain == "index.docker.io" {
		domain = "docker.io"
	}
	if domain == "docker.io" && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	name := domain + "/" + path
	if domain == "docker.io" {
		name = strings.TrimPrefix(path, "library/")
		if strings.Contains(name, "/") && strings.HasPrefix(path, "library/") {
			name = path // library/a/b stays as it is
		}
	}
	return strings.TrimSuffix(name+suffix, ":latest"), true
}

// platformSpec is an os/arch[/variant], normalized as BuildKit's
// platforms package does for the values Berth builds for.
type platformSpec struct{ OS, Arch, Variant string }

// defaultPlatform is the builder's own platform: linux on the host's
// arch (the builder VM runs the host's arch).
func defaultPlatform() platformSpec { return platformSpec{OS: "linux", Arch: runtime.GOARCH} }

// parsePlatform parses os/arch[/variant] (or arch alone, on linux).
func parsePlatform(s string) (platformSpec, bool) {
	f := strings.Split(strings.ToLower(s), "/")
	var p platformSpec
	switch len(f) {
	case 1:
		p = platformSpec{OS: "linux", Arch: f[0]}
	case 2:
		p = platformSpec{OS: f[0], Arch: f[1]}
	case 3:
		p = platformSpec{OS: f[0], Arch: f[1], Variant: f[2]}
	default:
		return p, false
	}
	for _, v := range []string{p.OS, p.Arch} {
		if v == "" || strings.Trim(v, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			return p, false
		}
	}
	switch p.Arch {
	case "x86_64", "x86-64":
		p.Arch = "amd64"
	case "aarch64":
		p.Arch = "arm64"
	}
	if (p.Arch == "amd64" && p.Variant == "v1") || (p.Arch == "arm64" && (p.Variant == "v8" || p.Variant == "8")) {
		p.Variant = ""
	}
	return p, true
}

func (p platformSpec) String() string {
	if p.Variant != "" {
		return p.OS + "/" + p.Arch + "/" + p.Variant
	}
	return p.OS + "/" + p.Arch
}

func (p platformSpec) v1() v1.Platform {
	return v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant}
}

// matches reports whether a stored image of platform have serves p.
func (p platformSpec) matches(have v1.Platform) bool {
	h, ok := parsePlatform(have.OS + "/" + have.Architecture + "/" + have.Variant)
	if have.Variant == "" {
		h, ok = parsePlatform(have.OS + "/" + have.Architecture)
	}
	return ok && h == p
}

// configureNetwork has guestinit configure the builder's NIC on its
// network (address, route, MTU, the gateway as its DNS server; the
// files in the builder's root, which buildkitd and its RUN steps read)
// and its host name; without a network, only the host name and
// loopback.
func configureNetwork(ctx context.Context, r *running) error {
	req := &agentpb.ConfigureNetworkRequest{Hostname: "berth-builder"}
	if r.net != nil {
		plan := r.net.net.Network().Plan
		req.Address, req.Gateway, req.Mtu = plan.Address.String(), plan.Gateway.String(), uint32(plan.MTU)
		for _, d := range plan.DNS {
			req.DnsServers = append(req.DnsServers, d.String())
		}
	}
	if err := r.ac.ConfigureNetwork(ctx, req); err != nil {
		return fmt.Errorf("configure its network: %w", err)
	}
	return nil
}
