package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/image"
)

// fakeBuilder is an in-memory image builder (the real one is a VM,
// tested in engine/builder): it records stops and answers prunes.
type fakeBuilder struct {
	running  bool
	startErr error
	pruneErr error
	// built is what the last Build was asked (its context read into
	// files, entry name → content); buildErr fails the build after one
	// progress line; result is the image a build returns.
	built    BuildRequest
	files    map[string]string
	buildErr error
	result   *image.Image
}

func (f *fakeBuilder) Build(_ context.Context, req BuildRequest) (*image.Image, error) {
	f.built, f.files = req, map[string]string{}
	tr := tar.NewReader(req.Context)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("build: read context: %w", err)
		}
		b, _ := io.ReadAll(tr)
		f.files[h.Name] = string(b)
	}
	req.Progress("#1 [internal] load build definition from Dockerfile")
	if f.buildErr != nil {
		return nil, f.buildErr
	}
	return f.result, nil
}

func (f *fakeBuilder) Start(context.Context) error {
	if f.startErr != nil {
		return f.startErr
	}
	f.running = true
	return nil
}

func (f *fakeBuilder) Status(context.Context) types.BuilderStatus {
	return types.BuilderStatus{Running: f.running, Socket: "/h/run/buildkitd.sock"}
}

func (f *fakeBuilder) Stop(context.Context) error { f.running = false; return nil }

func (f *fakeBuilder) Prune(context.Context) (string, error) {
	return "Total:\t1.2MB\n", f.pruneErr
}

// TestBuilderEndpoints: /berth/builder reports the builder, stop stops
// it, prune returns BuildKit's report or the builder's error with its
// class; an engine without a builder answers 501 saying so.
func TestBuilderEndpoints(t *testing.T) {
	b := newFakeBackend()
	if rec := serve(t, b, "GET", "/v1.47/berth/builder", nil); rec.Code != 501 || errorMessage(t, rec) != "this engine has no image builder" {
		t.Errorf("GET /berth/builder without a builder: %d %s", rec.Code, rec.Body)
	}
	f := &fakeBuilder{running: true}
	b.builder = f
	rec := serve(t, b, "GET", "/v1.47/berth/builder", nil)
	var st types.BuilderStatus
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &st) != nil || !st.Running || st.Socket != "/h/run/buildkitd.sock" {
		t.Errorf("GET /berth/builder: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(t, b, "POST", "/v1.47/berth/builder/stop", nil); rec.Code != 204 || f.running {
		t.Errorf("POST /berth/builder/stop: %d, running %v", rec.Code, f.running)
	}
	if rec := serve(t, b, "POST", "/v1.47/berth/builder/start", nil); rec.Code != 204 || !f.running {
		t.Errorf("POST /berth/builder/start: %d, running %v", rec.Code, f.running)
	}
	rec = serve(t, b, "POST", "/v1.47/berth/builder/prune", nil)
	var p types.BuilderPrune
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Report != "Total:\t1.2MB\n" {
		t.Errorf("POST /berth/builder/prune: %d %s", rec.Code, rec.Body)
	}
	f.pruneErr = errdefs.Unavailable(errors.New("start builder: buildkitd exited with 1 before it served; its log is /h/builder/buildkitd.log"))
	f.startErr = f.pruneErr
	for _, p := range []string{"/v1.47/berth/builder/prune", "/v1.47/berth/builder/start"} {
		if rec := serve(t, b, "POST", p, nil); rec.Code != 503 || errorMessage(t, rec) != f.pruneErr.Error() {
			t.Errorf("POST %s when the builder cannot start: %d %s", p, rec.Code, rec.Body)
		}
	}
}

// buildMessages decodes a POST /build response's JSON messages.
func buildMessages(t *testing.T, body []byte) []JSONMessage {
	t.Helper()
	var msgs []JSONMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var m JSONMessage
		if err := dec.Decode(&m); err == io.EOF {
			return msgs
		} else if err != nil {
			t.Fatalf("decode build stream %q: %v", body, err)
		}
		msgs = append(msgs, m)
	}
}

// TestBuildEndpoint: POST /build hands the builder the (gzip) context
// and the query's options, streams its progress, names the image in an
// aux message and tags it; a failing build is an error in the stream;
// bad tags, remote contexts and BuildKit's session API are refused
// before the build; without a builder it is 501.
func TestBuildEndpoint(t *testing.T) {
	b := newFakeBackend()
	var ctxTar bytes.Buffer
	zw := gzip.NewWriter(&ctxTar)
	tw := tar.NewWriter(zw)
	for name, content := range map[string]string{"Dockerfile": "FROM scratch\n", "app/x": "data"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		tw.Write([]byte(content))
	}
	tw.Close()
	zw.Close()
	q := url.Values{"t": {"app:1", "reg.example/app:2"}, "dockerfile": {"Dockerfile"}, "target": {"final"}, "nocache": {"1"},
		"platform": {"linux/amd64"}, "buildargs": {`{"A":"1","FROMENV":null}`}, "labels": {`{"l":"v"}`}}
	if rec := serve(t, b, "POST", "/v1.47/build?"+q.Encode(), bytes.NewReader(ctxTar.Bytes())); rec.Code != 501 {
		t.Errorf("POST /build without a builder: %d %s", rec.Code, rec.Body)
	}
	f := &fakeBuilder{result: b.images.images[0]}
	b.builder = f
	rec := serve(t, b, "POST", "/v1.47/build?"+q.Encode(), bytes.NewReader(ctxTar.Bytes()))
	if rec.Code != 200 {
		t.Fatalf("POST /build: %d %s", rec.Code, rec.Body)
	}
	if f.files["Dockerfile"] != "FROM scratch\n" || f.files["app/x"] != "data" {
		t.Errorf("the builder got the context %v; want the gzip body's tar", f.files)
	}
	r := f.built
	if r.Dockerfile != "Dockerfile" || r.Target != "final" || !r.NoCache || r.Pull || r.Platform != "linux/amd64" ||
		fmt.Sprint(r.BuildArgs) != "map[A:1]" || fmt.Sprint(r.Labels) != "map[l:v]" {
		t.Errorf("the builder was asked %+v", r)
	}
	var stream []string
	var auxID string
	for _, m := range buildMessages(t, rec.Body.Bytes()) {
		stream = append(stream, m.Stream)
		if a, ok := m.Aux.(map[string]any); ok {
			auxID, _ = a["ID"].(string)
		}
		if m.Error != "" {
			t.Errorf("build stream error: %+v", m)
		}
	}
	want := "#1 [internal] load build definition from Dockerfile\nSuccessfully built aaaaaaaaaaaa\nSuccessfully tagged app:1\nSuccessfully tagged reg.example/app:2\n"
	if got := strings.Join(stream, ""); got != want || auxID != b.images.images[0].ID {
		t.Errorf("build stream %q, aux ID %q; want %q and the image's ID", got, auxID, want)
	}

	// -q: the aux message and the ID alone in the stream (what the
	// docker CLI prints).
	rec = serve(t, b, "POST", "/v1.47/build?q=1", bytes.NewReader(ctxTar.Bytes()))
	if msgs := buildMessages(t, rec.Body.Bytes()); rec.Code != 200 || len(msgs) != 2 || msgs[0].Aux == nil || msgs[1].Stream != auxID+"\n" {
		t.Errorf("POST /build?q=1: %d %s; want the aux message and the ID", rec.Code, rec.Body)
	}

	// A failed build: its message in the stream, after the progress.
	f.buildErr = errors.New(`build: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`)
	for _, query := range []string{"", "?q=1"} {
		rec = serve(t, b, "POST", "/v1.47/build"+query, bytes.NewReader(ctxTar.Bytes()))
		msgs := buildMessages(t, rec.Body.Bytes())
		last := msgs[len(msgs)-1]
		if rec.Code != 200 || last.Error != f.buildErr.Error() || last.ErrorDetail == nil || last.ErrorDetail.Message != f.buildErr.Error() {
			t.Errorf("POST /build%s, failing: %d %s; want the error last in the stream", query, rec.Code, rec.Body)
		}
	}

	for query, want := range map[string]string{
		"t=Bad%20Tag":                  `build: tag "Bad Tag"`,
		"remote=https://example.com/x": "remote contexts",
		"version=2":                    "BuildKit's session API",
		"buildargs=%5B%5D":             "buildargs is not a JSON object",
	} {
		rec := serve(t, b, "POST", "/v1.47/build?"+query, bytes.NewReader(ctxTar.Bytes()))
		if rec.Code != 400 || !strings.Contains(errorMessage(t, rec), want) {
			t.Errorf("POST /build?%s: %d %s; want 400 with %q", query, rec.Code, rec.Body, want)
		}
	}
}
