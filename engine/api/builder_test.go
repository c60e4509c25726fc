package api

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
)

// fakeBuilder is an in-memory image builder (the real one is a VM,
// tested in engine/builder): it records stops and answers prunes.
type fakeBuilder struct {
	running  bool
	startErr error
	pruneErr error
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
