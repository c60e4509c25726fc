package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/events"
	"github.com/berthvm/berth/engine/image"
	moby "github.com/moby/moby/api/types/events"
	mobyimage "github.com/moby/moby/api/types/image"
)

// check asserts an answer's status and, for errors, that the message
// contains msg.
func check(t *testing.T, what string, rec interface {
	Result() *http.Response
}, code int, msg string) bool {
	t.Helper()
	res := rec.Result()
	if res.StatusCode != code {
		t.Errorf("%s: status %d, want %d", what, res.StatusCode, code)
		return false
	}
	if msg == "" {
		return true
	}
	var e struct{ Message string }
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || !strings.Contains(e.Message, msg) {
		t.Errorf("%s: message %q (%v), want it to contain %q", what, e.Message, err, msg)
		return false
	}
	return true
}

func TestImageList(t *testing.T) {
	cases := []struct {
		query string
		code  int
		ids   []string // first letters of the IDs' hex
		msg   string
	}{
		{"", 200, []string{"a", "d"}, ""},
		{"?filters=" + url.QueryEscape(`{"dangling":{"true":true}}`), 200, []string{"d"}, ""},
		{"?filters=" + url.QueryEscape(`{"dangling":["false"]}`), 200, []string{"a"}, ""},
		{"?filters=" + url.QueryEscape(`{"reference":{"alpine":true}}`), 200, []string{"a"}, ""},
		{"?filters=" + url.QueryEscape(`{"label":{"org.example=yes":true}}`), 200, []string{"a"}, ""},
		{"?filters=" + url.QueryEscape(`{"label":{"org.example=no":true}}`), 200, nil, ""},
		{"?filters=" + url.QueryEscape(`{"label":`), 400, nil, "invalid filters"},
		{"?filters=" + url.QueryEscape(`{"label":"x"}`), 400, nil, "invalid filters"},
	}
	for _, c := range cases {
		rec := serve(t, newFakeBackend(), "GET", "/v1.47/images/json"+c.query, nil)
		if !check(t, "images"+c.query, rec, c.code, c.msg) || c.code != 200 {
			continue
		}
		var got []mobyimage.Summary
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID[7:8])
			if s.RepoTags == nil || s.RepoDigests == nil || s.Containers != -1 {
				t.Errorf("images%s: %+v: RepoTags/RepoDigests must be [] and Containers -1", c.query, s)
			}
		}
		if strings.Join(ids, ",") != strings.Join(c.ids, ",") {
			t.Errorf("images%s: IDs %v, want %v", c.query, ids, c.ids)
		}
	}
}

func TestImageInspect(t *testing.T) {
	cases := []struct {
		path string
		code int
		msg  string
	}{
		{"/images/alpine/json", 200, ""},
		{"/images/alpine:latest/json", 200, ""},
		{"/images/sha256:" + strings.Repeat("a", 64) + "/json", 200, ""},
		{"/images/aaaa/json", 200, ""},
		{"/images/nope/json", 404, "No such image: nope"},
		{"/images/localhost:5000/team/app:1/json", 404, "No such image: localhost:5000/team/app:1"},
		{"/images/alpine/nope", 404, "page not found"},
	}
	for _, c := range cases {
		rec := serve(t, newFakeBackend(), "GET", c.path, nil)
		if !check(t, c.path, rec, c.code, c.msg) || c.code != 200 {
			continue
		}
		var got mobyimage.InspectResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.ID != "sha256:"+strings.Repeat("a", 64) || got.Os != "linux" || got.Architecture != "amd64" || got.Config == nil || got.Config.Cmd[0] != "/bin/sh" {
			t.Errorf("%s: %+v", c.path, got)
		}
	}
}

func TestImageTagRemovePrune(t *testing.T) {
	cases := []struct {
		method, path string
		code         int
		msg          string
	}{
		{"POST", "/images/alpine/tag?repo=me/app&tag=1", 201, ""},
		{"POST", "/images/alpine/tag?tag=1", 400, "repo is required"},
		{"POST", "/images/nope/tag?repo=x", 404, "No such image: nope"},
		{"POST", "/images/alpine/pusher", 404, "page not found"},
		{"DELETE", "/images/alpine", 409, "conflict: unable to remove repository reference \"alpine\" (must force)"},
		{"DELETE", "/images/alpine?force=0", 409, "must force"},
		{"DELETE", "/images/alpine?force=1", 200, ""},
		{"DELETE", "/images/nope", 404, "No such image: nope"},
	}
	for _, c := range cases {
		rec := serve(t, newFakeBackend(), c.method, c.path, nil)
		check(t, c.method+" "+c.path, rec, c.code, c.msg)
	}

	b := newFakeBackend()
	rec := serve(t, b, "DELETE", "/images/alpine?force=yes", nil)
	var del []mobyimage.DeleteResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &del); err != nil || len(del) != 2 || del[0].Untagged != "alpine" || del[1].Deleted == "" {
		t.Errorf("delete: %s (%v)", rec.Body, err)
	}
	if len(b.images.forced) != 1 || !b.images.forced[0] {
		t.Errorf("force=yes reached the store as %v, want true (dockerd's boolean)", b.images.forced)
	}

	for query, all := range map[string]bool{
		"": false,
		"?filters=" + url.QueryEscape(`{"dangling":{"false":true}}`): true,
		"?filters=" + url.QueryEscape(`{"dangling":["true"]}`):       false,
	} {
		b := newFakeBackend()
		rec := serve(t, b, "POST", "/images/prune"+query, nil)
		var rep mobyimage.PruneReport
		if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || rep.SpaceReclaimed != 42 || len(rep.ImagesDeleted) != 1 {
			t.Errorf("prune%s: %s", query, rec.Body)
		}
		if len(b.images.prunedAll) != 1 || b.images.prunedAll[0] != all {
			t.Errorf("prune%s: all %v, want %v", query, b.images.prunedAll, all)
		}
	}
}

func TestImageTagPublishesEvent(t *testing.T) {
	b := newFakeBackend()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, ch := b.events.Subscribe(ctx, time.Time{}, nil)
	if rec := serve(t, b, "POST", "/images/alpine/tag?repo=me/app&tag=1", nil); rec.Code != 201 {
		t.Fatalf("tag: %d %s", rec.Code, rec.Body)
	}
	select {
	case m := <-ch:
		if m.Action != "tag" || m.Actor.Attributes["name"] != "me/app:1" {
			t.Errorf("event %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no tag event")
	}
}

func TestImagePull(t *testing.T) {
	cases := []struct {
		query      string
		header     string
		code       int
		msg        string
		ref, arch  string
		wantStream []string
	}{
		{"?fromImage=alpine&tag=3.20&platform=linux/arm64", "", 200, "", "alpine:3.20", "arm64",
			[]string{`"status":"Pulling from library/alpine","id":"3.20"`, `"status":"Downloading"`, `"Status: Downloaded newer image for alpine:3.20"`}},
		{"?fromImage=alpine&tag=sha256:" + strings.Repeat("b", 64), "", 200, "", "alpine@sha256:" + strings.Repeat("b", 64), "", nil},
		{"?fromImage=alpine", "", 200, "", "alpine", "", []string{`"id":"latest"`}},
		{"", "", 400, "fromImage is required", "", "", nil},
		{"?fromImage=alpine&platform=a/b/c/d", "", 400, "invalid platform", "", "", nil},
		{"?fromImage=alpine", "%%%", 400, "X-Registry-Auth", "", "", nil},
		{"?fromImage=UPPER", "", 400, "", "", "", nil},
		{"?fromImage=missing", "", 404, "manifest unknown", "missing", "", nil},
	}
	for _, c := range cases {
		b := newFakeBackend()
		req := newRequest("POST", "/images/create"+c.query, nil)
		if c.header != "" {
			req.Header.Set("X-Registry-Auth", c.header)
		}
		rec := serveRequest(b, req)
		if !check(t, "pull"+c.query, rec, c.code, c.msg) {
			continue
		}
		if c.ref != "" {
			if len(b.images.pulled) != 1 || b.images.pulled[0].Ref != c.ref {
				t.Errorf("pull%s: pulled %+v, want %s", c.query, b.images.pulled, c.ref)
				continue
			}
			if p := b.images.pulled[0].Platform; (c.arch == "") != (p == nil) || (p != nil && p.Architecture != c.arch) {
				t.Errorf("pull%s: platform %+v, want %q", c.query, p, c.arch)
			}
		}
		for _, want := range c.wantStream {
			if !strings.Contains(rec.Body.String(), want) {
				t.Errorf("pull%s: stream lacks %s:\n%s", c.query, want, rec.Body)
			}
		}
	}
}

// TestImagePush: POST /images/{name}/push streams dockerd's push
// progress for name:tag, or for every stored tag of name without one,
// with X-Registry-Auth's credentials; an image the store lacks is a 404
// with Docker's text before any stream, a registry error comes inside it.
func TestImagePush(t *testing.T) {
	app := func(tags ...string) *image.Image {
		return &image.Image{ID: "sha256:" + strings.Repeat("e", 64), RepoTags: tags}
	}
	cases := []struct {
		path       string
		code       int
		msg        string
		pushed     []string
		wantStream []string
	}{
		{"/images/reg.example/team/app/push?tag=1", 200, "", []string{"reg.example/team/app:1"}, []string{
			`{"status":"The push refers to repository [reg.example/team/app]"}`,
			`{"status":"Preparing","id":"layer1","progressDetail":{}}`,
			`{"status":"Pushing","id":"layer1","progress":"[=========================\u003e `,
			`]       5B/10B","progressDetail":{"current":5,"total":10}}`,
			`{"status":"Pushed","id":"layer1","progressDetail":{}}`,
			`{"status":"Layer already exists","id":"layer2","progressDetail":{}}`,
			`{"status":"1: digest: sha256:` + strings.Repeat("c", 64) + ` size: 527"}`,
			`{"progressDetail":{},"aux":{"Tag":"1","Digest":"sha256:` + strings.Repeat("c", 64) + `","Size":527}}`,
		}},
		{"/images/reg.example/team/app:2/push", 200, "", []string{"reg.example/team/app:2"}, nil},
		{"/images/reg.example/team/app/push", 200, "", []string{"reg.example/team/app:1", "reg.example/team/app:2"}, []string{`"2: digest: sha256:`}},
		{"/images/reg.example/team/app/push?tag=3", 404, "No such image: reg.example/team/app:3", nil, nil},
		{"/images/reg.example/other/push", 404, "An image does not exist locally with the tag: reg.example/other", nil, nil},
		{"/images/UPPER/push", 400, "invalid reference format", nil, nil},
		{"/images/unreachable.example/app/push?tag=1", 200, "", []string{"unreachable.example/app:1"},
			[]string{`"error":"push unreachable.example/app:1: registry unreachable.example unreachable`}},
	}
	for _, c := range cases {
		b := newFakeBackend()
		b.images.images = append(b.images.images, app("reg.example/team/app:1", "reg.example/team/app:2", "unreachable.example/app:1"))
		req := newRequest("POST", c.path, nil)
		req.Header.Set("X-Registry-Auth", base64.URLEncoding.EncodeToString([]byte(`{"username":"u","password":"p"}`)))
		rec := serveRequest(b, req)
		if !check(t, "push "+c.path, rec, c.code, c.msg) {
			continue
		}
		var got []string
		for _, p := range b.images.pushed {
			got = append(got, p.Ref)
			if a, err := p.Auth.Authorization(); err != nil || a.Username != "u" || a.Password != "p" {
				t.Errorf("push %s: auth %+v %v", c.path, a, err)
			}
		}
		if strings.Join(got, " ") != strings.Join(c.pushed, " ") {
			t.Errorf("push %s: pushed %q, want %q", c.path, got, c.pushed)
		}
		for _, want := range c.wantStream {
			if !strings.Contains(rec.Body.String(), want) {
				t.Errorf("push %s: stream lacks %s:\n%s", c.path, want, rec.Body)
			}
		}
	}
}

func TestImagePullAuth(t *testing.T) {
	b := newFakeBackend()
	req := newRequest("POST", "/images/create?fromImage=alpine", nil)
	req.Header.Set("X-Registry-Auth", base64.URLEncoding.EncodeToString([]byte(`{"username":"u","password":"p"}`)))
	if rec := serveRequest(b, req); rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	a, err := b.images.pulled[0].Auth.Authorization()
	if err != nil || a.Username != "u" || a.Password != "p" {
		t.Errorf("auth %+v %v", a, err)
	}
}

func TestImageLoadSaveLogin(t *testing.T) {
	cases := []struct {
		method, path, body string
		code               int
		msg                string
		want               []string
	}{
		{"POST", "/images/load", "tarball", 200, "", []string{`"stream":"Loaded image: alpine:latest\n"`, `"stream":"Loaded image ID: sha256:dddd`}},
		{"POST", "/images/load", "junk", 400, "invalid tar header", nil},
		{"GET", "/images/get?names=alpine&names=sha256:" + strings.Repeat("d", 64), "", 200, "", []string{"tar of alpine,sha256:"}},
		{"GET", "/images/get", "", 400, "name at least one image", nil},
		{"GET", "/images/get?names=nope", "", 404, "No such image: nope", nil},
		{"GET", "/images/alpine/get", "", 200, "", []string{"tar of alpine"}},
		{"POST", "/auth", `{"username":"u","password":"secret","serveraddress":"r.example"}`, 200, "", []string{`"Status":"Login Succeeded"`}},
		{"POST", "/auth", `{"username":"u","password":"wrong","serveraddress":"r.example"}`, 401, "login to r.example: unauthorized", nil},
		{"POST", "/berth/images/unpack", `{"image":"alpine","output":"/tmp/x.ext4"}`, 204, "", nil},
	}
	for _, c := range cases {
		rec := serve(t, newFakeBackend(), c.method, c.path, strings.NewReader(c.body))
		if !check(t, c.method+" "+c.path, rec, c.code, c.msg) {
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(rec.Body.String(), w) {
				t.Errorf("%s %s: body lacks %s:\n%s", c.method, c.path, w, rec.Body)
			}
		}
	}
}

func TestEventsStream(t *testing.T) {
	b := newFakeBackend()
	b.events.Publish(events.Message{Type: "image", Action: "tag", Actor: moby.Actor{ID: "alpine"}})
	b.events.Publish(events.Message{Type: "container", Action: "start", Actor: moby.Actor{ID: "c1", Attributes: map[string]string{"name": "web"}}})
	now := time.Now()
	q := "?since=1&until=" + fmt.Sprintf("%.3f", float64(now.Add(100*time.Millisecond).UnixNano())/1e9) + "&filters=" + url.QueryEscape(`{"container":{"web":true}}`)
	rec := serve(t, b, "GET", "/events"+q, nil)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"Action":"start"`) {
		t.Errorf("events: %q", lines)
	}
	check(t, "events bad since", serve(t, b, "GET", "/events?since=yesterday", nil), 400, "invalid since/until")
	check(t, "events bad filters", serve(t, b, "GET", "/events?filters=x", nil), 400, "invalid filters")
}
