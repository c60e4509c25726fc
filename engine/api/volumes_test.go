package api

import (
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/share"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobymount "github.com/moby/moby/api/types/mount"
	mobyvolume "github.com/moby/moby/api/types/volume"
)

// TestVolumes drives /volumes as `docker volume` and compose do, on a
// real volume store: create with labels, inspect, list with each filter,
// remove (409 in use, with Docker's text; 404 missing; force), prune
// (anonymous only unless all=true).
func TestVolumes(t *testing.T) {
	b := newFakeBackend()
	users := map[string][]string{}
	st := b.newVolumes(t, users)

	rec := serve(t, b, "POST", "/v1.47/volumes/create", strings.NewReader(`{"Name":"db","Labels":{"com.docker.compose.project":"p"}}`))
	if !check(t, "create", rec, 201, "") {
		t.Fatal(rec.Body)
	}
	var v mobyvolume.Volume
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Name != "db" || v.Driver != "local" || v.Scope != "local" || v.Labels["com.docker.compose.project"] != "p" || v.Mountpoint != st.Dir()+"/db/_data" || v.CreatedAt == "" {
		t.Errorf("created %+v", v)
	}
	check(t, "create bad name", serve(t, b, "POST", "/volumes/create", strings.NewReader(`{"Name":"../x"}`)), 400, "includes invalid characters for a local volume name")
	check(t, "create other driver", serve(t, b, "POST", "/volumes/create", strings.NewReader(`{"Name":"x1","Driver":"nfs"}`)), 400, "not supported")
	rec = serve(t, b, "POST", "/volumes/create", strings.NewReader(`{}`))
	check(t, "create unnamed", rec, 201, "")
	if _, err := st.Create(share.CreateOptions{Anonymous: true}); err != nil {
		t.Fatal(err)
	}
	check(t, "inspect", serve(t, b, "GET", "/volumes/db", nil), 200, "")
	check(t, "inspect missing", serve(t, b, "GET", "/volumes/nope", nil), 404, "get nope: no such volume")

	users["db"] = []string{"c1"}
	list := func(filters string) []string {
		t.Helper()
		rec := serve(t, b, "GET", "/v1.47/volumes?filters="+url.QueryEscape(filters), nil)
		if !check(t, "list "+filters, rec, 200, "") {
			return nil
		}
		var resp mobyvolume.ListResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.Warnings == nil {
			t.Fatalf("list: %v %s", err, rec.Body)
		}
		var names []string
		for _, v := range resp.Volumes {
			names = append(names, v.Name)
		}
		sort.Strings(names)
		return names
	}
	if got := list(""); len(got) != 3 {
		t.Errorf("list all = %q", got)
	}
	if got := list(`{"dangling":{"false":true}}`); len(got) != 1 || got[0] != "db" {
		t.Errorf("dangling=false = %q", got)
	}
	if got := list(`{"dangling":["true"]}`); len(got) != 2 {
		t.Errorf("dangling=true = %q", got)
	}
	if got := list(`{"label":{"com.docker.compose.project=p":true}}`); len(got) != 1 || got[0] != "db" {
		t.Errorf("label filter = %q", got)
	}
	if got := list(`{"label":{"com.docker.volume.anonymous":true}}`); len(got) != 1 {
		t.Errorf("anonymous label filter = %q", got)
	}
	// name matches a substring, as Docker's does (a generated hex name
	// may contain "db" too).
	got := list(`{"name":{"db":true}}`)
	if !strings.Contains(strings.Join(got, " "), "db") {
		t.Errorf("name filter = %q, want db among them", got)
	}
	for _, n := range got {
		if !strings.Contains(n, "db") {
			t.Errorf("name filter db matched %q", n)
		}
	}
	check(t, "list bad filter", serve(t, b, "GET", "/volumes?filters="+url.QueryEscape(`{"bogus":{"x":true}}`), nil), 400, "invalid filter 'bogus'")

	check(t, "rm in use", serve(t, b, "DELETE", "/v1.47/volumes/db", nil), 409, "remove db: volume is in use - [c1]")
	check(t, "rm missing", serve(t, b, "DELETE", "/volumes/nope", nil), 404, "get nope: no such volume")
	check(t, "rm missing, force", serve(t, b, "DELETE", "/volumes/nope?force=1", nil), 204, "")

	// Prune: the anonymous one only; with all=true the unused named one
	// too, never db (in use).
	rec = serve(t, b, "POST", "/v1.47/volumes/prune", nil)
	var rep mobyvolume.PruneReport
	if !check(t, "prune", rec, 200, "") || json.Unmarshal(rec.Body.Bytes(), &rep) != nil || len(rep.VolumesDeleted) != 1 {
		t.Errorf("prune: %s", rec.Body)
	}
	rec = serve(t, b, "POST", "/v1.47/volumes/prune?filters="+url.QueryEscape(`{"all":["true"]}`), nil)
	if !check(t, "prune all", rec, 200, "") || json.Unmarshal(rec.Body.Bytes(), &rep) != nil || len(rep.VolumesDeleted) != 1 {
		t.Errorf("prune all: %s", rec.Body)
	}
	if got := list(""); len(got) != 1 || got[0] != "db" {
		t.Errorf("after prunes = %q", got)
	}
	delete(users, "db")
	check(t, "rm", serve(t, b, "DELETE", "/volumes/db", nil), 204, "")
}

// TestInspectMounts: a container's binds and volumes appear in inspect's
// Mounts as Docker shows them, and HostConfig keeps Binds and Mounts as
// sent.
func TestInspectMounts(t *testing.T) {
	b := newFakeBackend()
	id := b.containers.add("m", "alpine", mobycontainer.StateRunning, nil)
	sn := b.containers.byID[id]
	sn.Spec.HostConfig.Binds = []string{"/h:/c:ro"}
	sn.Spec.HostConfig.Mounts = []mobymount.Mount{{Type: "volume", Source: "data", Target: "/d"}}
	sn.Spec.Mounts = []share.Mount{
		{Type: "bind", Source: "/h", Target: "/c", ReadOnly: true, HostPath: "/h", Spec: "/h:/c:ro"},
		{Type: "volume", Source: "data", Target: "/d", HostPath: "/home/u/.berth/volumes/data/_data"},
	}
	rec := serve(t, b, "GET", "/v1.47/containers/m/json", nil)
	var resp mobycontainer.InspectResponse
	if !check(t, "inspect", rec, 200, "") || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
		t.Fatal(rec.Body)
	}
	want := []mobycontainer.MountPoint{
		{Type: "bind", Source: "/h", Destination: "/c", Mode: "ro", RW: false, Propagation: "rprivate"},
		{Type: "volume", Name: "data", Source: "/home/u/.berth/volumes/data/_data", Destination: "/d", Driver: "local", RW: true},
	}
	if len(resp.Mounts) != 2 || resp.Mounts[0] != want[0] || resp.Mounts[1] != want[1] {
		t.Errorf("Mounts = %+v, want %+v", resp.Mounts, want)
	}
	if resp.HostConfig == nil || len(resp.HostConfig.Binds) != 1 || len(resp.HostConfig.Mounts) != 1 {
		t.Errorf("HostConfig = %+v", resp.HostConfig)
	}
}
