package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Login checks credentials against a registry as `docker login` does: it
// authenticates (HTTP basic, or the registry's token exchange) and asks
// for /v2/. server is a host[:port], optionally as a URL
// ("https://index.docker.io/v1/" means Docker Hub). Nothing is stored:
// the client keeps the credentials and sends them with each pull.
func (s *Store) Login(ctx context.Context, server string, auth authn.Authenticator) error {
	host := registryHost(server)
	opts := []name.Option{name.WithDefaultRegistry(hubRegistry)}
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	if isLoopbackHost(hostname) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("login: invalid registry %q: %w", server, err))
	}
	rt := schemeGuard{inner: s.opt.transport}
	tr, err := transport.NewWithContext(ctx, reg, auth, rt, []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return loginError(reg, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return loginError(reg, err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return errdefs.Unauthorized(fmt.Errorf("login to %s: unauthorized: incorrect username or password", reg.RegistryStr()))
	}
	return errdefs.Unavailable(fmt.Errorf("login to %s: registry answered %s", reg.RegistryStr(), resp.Status))
}

// loginError classifies a failure to authenticate or to reach a registry.
func loginError(reg name.Registry, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
		return errdefs.Unauthorized(fmt.Errorf("login to %s: unauthorized: incorrect username or password", reg.RegistryStr()))
	}
	return classify(fmt.Errorf("login to %s: %w", reg.RegistryStr(), err), reg.Repo("library/x").Tag("latest"))
}

// registryHost reduces what `docker login` sends as the server address
// (a host, or a URL such as https://index.docker.io/v1/) to host[:port].
func registryHost(server string) string {
	s := strings.TrimSpace(server)
	for _, p := range []string{"https://", "http://"} {
		s = strings.TrimPrefix(s, p)
	}
	s, _, _ = strings.Cut(s, "/")
	switch s {
	case "", "index.docker.io", "registry-1.docker.io":
		return hubRegistry
	}
	return s
}
