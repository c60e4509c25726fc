package api

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	bnet "github.com/berthvm/berth/engine/network"
	"github.com/moby/moby/api/types/network"
)

// TestNetworkEndpoints drives /networks on a real network manager:
// create (with labels and a subnet), list with filters, inspect with the
// running containers, the refusals (overlap, unsupported options, in
// use with Docker's text), prune, connect and disconnect reaching the
// containers (--ip refused), and the create, connect, disconnect and
// destroy events (filtered by network).
func TestNetworkEndpoints(t *testing.T) {
	b := newFakeBackend()
	nets := b.newNetworks(t)
	t0 := time.Now()
	post := func(body string) (network.CreateResponse, int, string) {
		rec := serve(t, b, "POST", "/v1.47/networks/create", strings.NewReader(body))
		var out network.CreateResponse
		if rec.Code == 201 {
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			return out, rec.Code, ""
		}
		return out, rec.Code, errorMessage(t, rec)
	}
	front, code, msg := post(`{"Name":"front","Labels":{"com.docker.compose.project":"shop"}}`)
	if code != 201 || len(front.ID) != 64 {
		t.Fatalf("create front: %d %s", code, msg)
	}
	if _, code, msg = post(`{"Name":"back","Driver":"bridge","Internal":true,"IPAM":{"Driver":"default","Config":[{"Subnet":"10.77.0.0/24","Gateway":"10.77.0.1"}]}}`); code != 201 {
		t.Fatalf("create back: %d %s", code, msg)
	}
	for body, want := range map[string]string{
		`{"Name":"x","IPAM":{"Config":[{"Subnet":"10.77.0.128/25"}]}}`:                     "Pool overlaps with other one on this address space",
		`{"Name":"x","Driver":"macvlan"}`:                                                  `driver "macvlan" is not supported by Berth`,
		`{"Name":"x","EnableIPv6":true}`:                                                   "--ipv6 is not supported",
		`{"Name":"x","IPAM":{"Config":[{"Subnet":"10.78.0.0/24","Gateway":"10.78.0.9"}]}}`: "gateway is its subnet's first address (10.78.0.1)",
	} {
		if _, code, msg := post(body); code != 400 || !strings.Contains(msg, want) {
			t.Errorf("create %s: %d %q, want 400 containing %q", body, code, msg, want)
		}
	}
	if _, code, msg := post(`{"Name":"front"}`); code != 409 || msg != "network with name front already exists" {
		t.Errorf("create front again: %d %q", code, msg)
	}

	list := func(filters string) []string {
		t.Helper()
		rec := serve(t, b, "GET", "/v1.47/networks?filters="+url.QueryEscape(filters), nil)
		var out []network.Summary
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Fatalf("list %s: %d %s", filters, rec.Code, rec.Body)
		}
		var names []string
		for _, n := range out {
			names = append(names, n.Name)
		}
		return names
	}
	for filters, want := range map[string]string{
		``: "bridge back front",
		`{"label":{"com.docker.compose.project=shop":true}}`: "front",
		`{"label":{"com.docker.compose.project":true}}`:      "front",
		`{"name":{"ack":true}}`:                              "back",
		`{"type":{"custom":true}}`:                           "back front",
		`{"id":{"` + front.ID[:6] + `":true}}`:               "front",
	} {
		if got := strings.Join(list(filters), " "); got != want {
			t.Errorf("list %s: %q, want %q", filters, got, want)
		}
	}
	if rec := serve(t, b, "GET", "/v1.47/networks?filters="+url.QueryEscape(`{"color":{"red":true}}`), nil); rec.Code != 400 {
		t.Errorf("list with an unknown filter: %d", rec.Code)
	}

	// A running container shows in inspect and keeps its network.
	att, err := nets.Attach(context.Background(), bnet.AttachRequest{ContainerID: strings.Repeat("c", 64), Name: "web", Network: "back"})
	if err != nil {
		t.Fatal(err)
	}
	rec := serve(t, b, "GET", "/v1.47/networks/back", nil)
	var insp network.Inspect
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &insp) != nil {
		t.Fatalf("inspect back: %d %s", rec.Code, rec.Body)
	}
	ep := insp.Containers[strings.Repeat("c", 64)]
	if insp.Driver != "bridge" || insp.Scope != "local" || !insp.Internal || insp.IPAM.Config[0].Subnet.String() != "10.77.0.0/24" || insp.IPAM.Config[0].Gateway.String() != "10.77.0.1" ||
		ep.Name != "web" || ep.IPv4Address.String() != "10.77.0.2/24" {
		t.Errorf("inspect back: %s", rec.Body)
	}
	rec = serve(t, b, "DELETE", "/v1.47/networks/back", nil)
	check(t, "remove back in use", rec, 409, "error while removing network: network back id ")
	check(t, "remove bridge", serve(t, b, "DELETE", "/v1.47/networks/bridge", nil), 403, "bridge is a pre-defined network and cannot be removed")
	check(t, "inspect nope", serve(t, b, "GET", "/v1.47/networks/nope", nil), 404, "network nope not found")
	b.containers.add("web", "busybox", "exited", nil)
	check(t, "disconnect", serve(t, b, "POST", "/v1.47/networks/back/disconnect", strings.NewReader(`{"Container":"web"}`)), 200, "")
	check(t, "connect", serve(t, b, "POST", "/v1.47/networks/back/connect", strings.NewReader(`{"Container":"web","EndpointConfig":{"Aliases":["api"]}}`)), 200, "")
	check(t, "connect --ip", serve(t, b, "POST", "/v1.47/networks/back/connect", strings.NewReader(`{"Container":"web","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.77.0.9"}}}`)), 200, "")
	check(t, "connect --ip6", serve(t, b, "POST", "/v1.47/networks/back/connect", strings.NewReader(`{"Container":"web","EndpointConfig":{"IPAMConfig":{"IPv6Address":"fd00::9"}}}`)), 501, "--ip6, --link-local-ip, --link and --driver-opt are not supported yet by Berth")
	check(t, "connect nosuch", serve(t, b, "POST", "/v1.47/networks/back/connect", strings.NewReader(`{"Container":"nosuch"}`)), 404, "No such container: nosuch")
	if got := strings.Join(b.containers.connects, ", "); got != "disconnect back web, connect back web [api] invalid IP, connect back web [] 10.77.0.9" {
		t.Errorf("connect and disconnect reached the containers as %q", got)
	}

	rec = serve(t, b, "POST", "/v1.47/networks/prune", nil)
	var rep network.PruneReport
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &rep) != nil || strings.Join(rep.NetworksDeleted, " ") != "front" {
		t.Errorf("prune: %d %s, want front (back is in use)", rec.Code, rec.Body)
	}
	att.Close()
	check(t, "remove back", serve(t, b, "DELETE", "/v1.47/networks/back", nil), 204, "")
	if got := strings.Join(list(""), " "); got != "bridge" {
		t.Errorf("after remove and prune: %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	past, _ := b.events.Subscribe(ctx, t0, filters{"network": {"front": true, "back": true}}.matchEvent)
	var seen []string
	for _, m := range past {
		seen = append(seen, string(m.Action)+" "+m.Actor.Attributes["name"])
	}
	if got := strings.Join(seen, ", "); got != "create front, create back, disconnect back, connect back, connect back, destroy front, destroy back" {
		t.Errorf("network events: %s", got)
	}
}

// TestCreateOnANetwork: --network NAME and --network-alias reach the
// engine (the aliases of the container's endpoint); an engine without
// networks answers the network endpoints 501.
func TestCreateOnANetwork(t *testing.T) {
	b := newFakeBackend()
	body := withDefaults(t, "", `{"NetworkMode":"front"}`, "")
	body = strings.Replace(body, `"EndpointsConfig":{"default":{`, `"EndpointsConfig":{"front":{`, 1)
	body = strings.Replace(body, `"Aliases":null`, `"Aliases":["shop","web"]`, 1)
	rec := serve(t, b, "POST", "/v1.47/containers/create", strings.NewReader(body))
	if rec.Code != 201 || len(b.containers.created) != 1 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	req := b.containers.created[0]
	if req.HostConfig.NetworkMode != "front" || strings.Join(req.Aliases, " ") != "shop web" {
		t.Errorf("create request: mode %q aliases %v", req.HostConfig.NetworkMode, req.Aliases)
	}
	check(t, "list without networks", serve(t, b, "GET", "/v1.47/networks", nil), 200, "")
	check(t, "create without networks", serve(t, b, "POST", "/v1.47/networks/create", strings.NewReader(`{"Name":"x"}`)), 501, "networks are not supported by Berth on this backend yet")
}
