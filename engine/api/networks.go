package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/events"
	bnet "github.com/berthvm/berth/engine/network"
	moby "github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
)

// Networks are Berth's networks as the API uses them (engine/network's
// Manager). A missing network is errdefs.ErrNotFound with Docker's text
// ("network NAME not found"); removing one a container runs on is
// errdefs.ErrConflict ("error while removing network: network NAME id
// ID has active endpoints ...").
type Networks interface {
	List() []bnet.Info
	Get(ref string) (bnet.Info, error)
	Create(opts bnet.CreateOptions) (bnet.Info, error)
	Remove(ref string) error
	// Prune removes the unused user-defined networks match accepts and
	// returns their names.
	Prune(match func(bnet.Info) bool) ([]string, error)
}

// errNoNetworks answers the network endpoints on an engine without
// Berth's networks (macOS, where each VM keeps vz's NAT).
var errNoNetworks = errdefs.NotImplemented(errors.New("networks are not supported by Berth on this backend yet: each container's VM is on the hypervisor's NAT"))

func (s *Server) networkRoutes() {
	s.mux.HandleFunc("GET /networks", s.networkList)
	s.mux.HandleFunc("POST /networks/create", s.networkCreate)
	s.mux.HandleFunc("POST /networks/prune", s.networkPrune)
	s.mux.HandleFunc("GET /networks/{id}", s.networkInspect)
	s.mux.HandleFunc("DELETE /networks/{id}", s.networkDelete)
	s.mux.HandleFunc("POST /networks/{id}/connect", s.networkConnect)
	s.mux.HandleFunc("POST /networks/{id}/disconnect", s.networkConnect)
}

// networkJSON is a network as Docker's API shows it.
func networkJSON(i bnet.Info) network.Inspect {
	labels := i.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	out := network.Inspect{
		Network: network.Network{
			Name: i.Name, ID: i.ID, Created: i.Created, Scope: "local", Driver: "bridge", EnableIPv4: true, Internal: i.Internal,
			IPAM:    network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{{Subnet: i.Subnet, Gateway: i.Gateway()}}},
			Options: map[string]string{}, Labels: labels,
			ConfigFrom: network.ConfigReference{},
		},
		Containers: map[string]network.EndpointResource{},
	}
	for id, ep := range i.Endpoints {
		out.Containers[id] = network.EndpointResource{Name: ep.Name, EndpointID: id, IPv4Address: netip.PrefixFrom(ep.Address, i.Subnet.Bits())}
	}
	return out
}

// matchNetwork applies `docker network ls --filter`: name (substring),
// id (prefix), label, driver, scope, type (builtin, custom), dangling.
func (f filters) matchNetwork(i bnet.Info) bool {
	if !f.matchLabels(i.Labels) {
		return false
	}
	any := func(key string, ok func(string) bool) bool {
		vals := f[key]
		if len(vals) == 0 {
			return true
		}
		for v := range vals {
			if ok(v) {
				return true
			}
		}
		return false
	}
	return any("name", func(v string) bool { return strings.Contains(i.Name, v) }) &&
		any("id", func(v string) bool { return strings.HasPrefix(i.ID, v) }) &&
		any("driver", func(v string) bool { return v == "bridge" }) &&
		any("scope", func(v string) bool { return v == "local" }) &&
		any("type", func(v string) bool { return (v == "builtin") == i.Default }) &&
		any("dangling", func(v string) bool { return (v == "true" || v == "1") == (len(i.Endpoints) == 0 && !i.Default) })
}

func (s *Server) networks() (Networks, error) {
	n := s.backend.Networks()
	if n == nil {
		return nil, errNoNetworks
	}
	return n, nil
}

func (s *Server) networkList(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for k := range f {
		switch k {
		case "name", "id", "label", "driver", "scope", "type", "dangling":
		default:
			s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("invalid filter '%s'", k)))
			return
		}
	}
	out := []network.Inspect{}
	n := s.backend.Networks()
	if n == nil {
		writeJSON(w, http.StatusOK, out)
		return
	}
	for _, i := range n.List() {
		if f.matchNetwork(i) {
			out = append(out, networkJSON(i))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) networkInspect(w http.ResponseWriter, r *http.Request) {
	n, err := s.networks()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	i, err := n.Get(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, networkJSON(i))
}

func (s *Server) networkCreate(w http.ResponseWriter, r *http.Request) {
	var req network.CreateRequest
	if err := decodeBody(w, r, "create network", &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	n, err := s.networks()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	opts, err := createOptions(req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	i, err := n.Create(opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.networkEvent(moby.ActionCreate, i)
	writeJSON(w, http.StatusCreated, network.CreateResponse{ID: i.ID})
}

// createOptions checks a create request against what Berth's networks
// are (an IPv4 subnet, a switch in user space) and refuses the rest
// naming the flag.
func createOptions(req network.CreateRequest) (bnet.CreateOptions, error) {
	bad := func(format string, a ...any) (bnet.CreateOptions, error) {
		return bnet.CreateOptions{}, errdefs.InvalidArgument(fmt.Errorf("create network %s: "+format, append([]any{req.Name}, a...)...))
	}
	switch {
	case req.Driver != "" && req.Driver != "bridge":
		return bad("driver %q is not supported by Berth: its networks are user-space switches (use the default driver, bridge)", req.Driver)
	case req.Scope != "" && req.Scope != "local":
		return bad("scope %q is not supported by Berth (its networks are local)", req.Scope)
	case req.EnableIPv6 != nil && *req.EnableIPv6:
		return bad("--ipv6 is not supported by Berth yet (its networks are IPv4)")
	case req.EnableIPv4 != nil && !*req.EnableIPv4:
		return bad("--ipv4=false is not supported by Berth (its networks are IPv4)")
	case req.Attachable || req.Ingress || req.ConfigOnly || req.ConfigFrom != nil:
		return bad("--attachable, --ingress, --config-only and --config-from are swarm features Berth has not got")
	case len(req.Options) > 0:
		return bad("driver options (-o) are not supported by Berth")
	}
	opts := bnet.CreateOptions{Name: req.Name, Labels: req.Labels, Internal: req.Internal}
	if req.IPAM != nil {
		if req.IPAM.Driver != "" && req.IPAM.Driver != "default" {
			return bad("IPAM driver %q is not supported by Berth (use the default one)", req.IPAM.Driver)
		}
		if len(req.IPAM.Config) > 1 {
			return bad("one subnet per network: Berth's networks have one IPv4 subnet")
		}
		for _, c := range req.IPAM.Config {
			if c.IPRange.IsValid() || len(c.AuxAddress) > 0 {
				return bad("--ip-range and --aux-address are not supported by Berth yet")
			}
			if c.Gateway.IsValid() && c.Subnet.IsValid() && c.Gateway != c.Subnet.Masked().Addr().Next() {
				return bad("gateway %s: a Berth network's gateway is its subnet's first address (%s)", c.Gateway, c.Subnet.Masked().Addr().Next())
			}
			opts.Subnet = c.Subnet
		}
	}
	return opts, nil
}

func (s *Server) networkDelete(w http.ResponseWriter, r *http.Request) {
	n, err := s.networks()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	i, err := n.Get(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := n.Remove(i.ID); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.networkEvent(moby.ActionDestroy, i)
	w.WriteHeader(http.StatusNoContent)
}

// networkPrune removes the unused user-defined networks the label and
// until filters pick.
func (s *Server) networkPrune(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var until time.Time
	for v := range f["until"] {
		// A duration ("24h") is that long ago, as in Docker.
		if d, derr := time.ParseDuration(v); derr == nil {
			until = time.Now().Add(-d)
			continue
		}
		if until, err = parseTime(v); err != nil {
			s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("network prune: invalid until %q: %w", v, err)))
			return
		}
	}
	n, err := s.networks()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var gone []bnet.Info
	deleted, err := n.Prune(func(i bnet.Info) bool {
		if !until.IsZero() && !i.Created.Before(until) {
			return false
		}
		defer func() { gone = append(gone, i) }()
		for want := range f["label!"] {
			k, val, hasValue := strings.Cut(want, "=")
			if got, ok := i.Labels[k]; ok && (!hasValue || got == val) {
				return false
			}
		}
		return f.matchLabels(i.Labels)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, i := range gone {
		if slices.Contains(deleted, i.Name) {
			s.networkEvent(moby.ActionDestroy, i)
		}
	}
	if deleted == nil {
		deleted = []string{}
	}
	writeJSON(w, http.StatusOK, network.PruneReport{NetworksDeleted: deleted})
}

// networkEvent publishes a network's create or destroy, as Docker's
// daemon does (attributes name and type).
func (s *Server) networkEvent(action moby.Action, i bnet.Info) {
	s.backend.Events().Publish(events.Message{Type: moby.NetworkEventType, Action: action, Actor: moby.Actor{ID: i.ID, Attributes: map[string]string{"name": i.Name, "type": "bridge"}}})
}

// networkConnect answers connect and disconnect: a stopped or created
// container's network changes from its next start (a Berth container is
// on one network: connect takes one disconnected from its network); a
// running container's is refused with what to do.
func (s *Server) networkConnect(w http.ResponseWriter, r *http.Request) {
	if _, err := s.networks(); err != nil {
		s.writeError(w, r, err)
		return
	}
	ref := r.PathValue("id")
	var name, ctr string
	var err error
	action := moby.ActionConnect
	if strings.HasSuffix(r.URL.Path, "/disconnect") {
		action = moby.ActionDisconnect
		var req network.DisconnectRequest
		if err := decodeBody(w, r, "disconnect from network", &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		ctr = req.Container
		name, err = s.backend.Containers().Disconnect(ctr, ref)
	} else {
		var req network.ConnectRequest
		if err := decodeBody(w, r, "connect to network", &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		var cep container.Endpoint
		if ep := req.EndpointConfig; ep != nil {
			ipam := ep.IPAMConfig != nil && (ep.IPAMConfig.IPv6Address.IsValid() || len(ep.IPAMConfig.LinkLocalIPs) > 0)
			if ipam || len(ep.Links) > 0 || len(ep.MacAddress) > 0 || len(ep.DriverOpts) > 0 {
				s.writeError(w, r, errdefs.NotImplemented(errors.New("docker network connect: --ip6, --link-local-ip, --link and --driver-opt are not supported yet by Berth")))
				return
			}
			cep.Aliases = ep.Aliases
			if ep.IPAMConfig != nil {
				cep.IP = ep.IPAMConfig.IPv4Address
			}
		}
		ctr = req.Container
		name, err = s.backend.Containers().Connect(ctr, ref, cep)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	attrs := map[string]string{"name": name, "type": "bridge"}
	id := ref
	if n, err := s.networks(); err == nil {
		if i, err := n.Get(name); err == nil {
			id = i.ID
		}
	}
	if sn, err := s.backend.Containers().Inspect(ctr); err == nil {
		attrs["container"] = sn.Spec.ID
	}
	s.backend.Events().Publish(events.Message{Type: moby.NetworkEventType, Action: action, Actor: moby.Actor{ID: id, Attributes: attrs}})
	w.WriteHeader(http.StatusOK)
}
