package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"slices"
	"testing"

	mobycontainer "github.com/moby/moby/api/types/container"
)

// docker cp's endpoints: the stat header on HEAD and GET, the tar body,
// PUT's plain and gzip bodies, and the errors.
func TestArchiveEndpoints(t *testing.T) {
	statOf := func(t *testing.T, h string) mobycontainer.PathStat {
		t.Helper()
		b, err := base64.StdEncoding.DecodeString(h)
		var st mobycontainer.PathStat
		if err != nil || json.Unmarshal(b, &st) != nil {
			t.Fatalf("%s header %q: %v", pathStatHeader, h, err)
		}
		return st
	}
	rec := serve(t, newFakeBackend(), "HEAD", "/v1.47/containers/web/archive?path=/etc/hostname", nil)
	if st := statOf(t, rec.Header().Get(pathStatHeader)); rec.Code != 200 || st.Name != "hostname" || st.Size != 5 {
		t.Fatalf("HEAD: %d %+v", rec.Code, st)
	}
	if rec := serve(t, newFakeBackend(), "HEAD", "/containers/web/archive?path=/nope", nil); rec.Code != 404 || rec.Body.Len() != 0 {
		t.Fatalf("HEAD /nope: %d %q; want a bare 404", rec.Code, rec.Body)
	}
	rec = serve(t, newFakeBackend(), "GET", "/containers/web/archive?path=/etc/hostname", nil)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-tar" || statOf(t, rec.Header().Get(pathStatHeader)).Name != "hostname" {
		t.Fatalf("GET: %d %v", rec.Code, rec.Header())
	}
	if h, err := tar.NewReader(rec.Body).Next(); err != nil || h.Name != "hostname" {
		t.Fatalf("GET body: %v, %v", h, err)
	}
	check(t, "GET /nope", serve(t, newFakeBackend(), "GET", "/containers/web/archive?path=/nope", nil), 404, "Could not find the file /nope in container web")
	check(t, "GET no path", serve(t, newFakeBackend(), "GET", "/containers/web/archive", nil), 400, "path parameter is required")
	check(t, "GET no container", serve(t, newFakeBackend(), "GET", "/containers/nope/archive?path=/", nil), 404, "No such container: nope")

	var tarBody bytes.Buffer
	tw := tar.NewWriter(&tarBody)
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBody.Bytes())
	zw.Close()
	b := newFakeBackend()
	for _, body := range [][]byte{tarBody.Bytes(), gz.Bytes()} {
		if rec := serve(t, b, "PUT", "/containers/web/archive?path=/tmp&noOverwriteDirNonDir=true", bytes.NewReader(body)); rec.Code != 200 {
			t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
		}
	}
	if want := []string{"/tmp:f", "/tmp:f"}; !slices.Equal(b.containers.extracted, want) {
		t.Fatalf("extracted %q; want %q", b.containers.extracted, want)
	}
	check(t, "PUT no path", serve(t, b, "PUT", "/containers/web/archive", bytes.NewReader(tarBody.Bytes())), 400, "path parameter is required")
}
