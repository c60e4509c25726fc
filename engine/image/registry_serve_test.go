package image

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestRegistryServesStore: go-containerregistry's client pulls a stored
// image from the store's Registry by tag and by digest (manifest, config
// and layers verified); unknown names, tags, digests and blobs that no
// image is made of are 404 with the distribution spec's error body;
// writes are 405; hostile paths never reach a file outside the store's
// blobs.
func TestRegistryServesStore(t *testing.T) {
	f := sharedFixture(t)
	s := openTestStore(t)
	ctx := context.Background()
	src := f.ref("test/busybox:1")
	res, err := s.Pull(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(s)
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	repo, err := RegistryRepository(src)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(f.reg.Host, ":", "_", 1) + "/test/busybox"; repo != want {
		t.Fatalf("RegistryRepository(%s) = %s, want %s", src, repo, want)
	}
	if r, _ := RegistryRepository("busybox"); r != "docker.io/library/busybox" {
		t.Errorf("RegistryRepository(busybox) = %s", r)
	}
	wantDigest := res.Image.Manifest.Digest
	for _, ref := range []string{host + "/" + repo + ":1", host + "/" + repo + "@" + wantDigest.String(), host + "/any/name@" + wantDigest.String()} {
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(r)
		if err != nil {
			t.Fatalf("pull %s from the store's registry: %v", ref, err)
		}
		if d, _ := img.Digest(); d != wantDigest {
			t.Errorf("%s: digest %s, want %s", ref, d, wantDigest)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s: the image served does not validate: %v", ref, err)
		}
	}
	if st := reg.Stats(); st.Manifests < 3 || st.Blobs < 3 {
		t.Errorf("stats after three pulls: %+v", st)
	}

	// A layer with a Range request (BuildKit resumes).
	m, err := f.single.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layer := m.Layers[0].Digest
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/"+repo+"/blobs/"+layer.String(), nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || len(part) != 10 || resp.Header.Get("Docker-Content-Digest") != layer.String() {
		t.Errorf("ranged blob GET: %d, %d bytes, digest header %q", resp.StatusCode, len(part), resp.Header.Get("Docker-Content-Digest"))
	}

	// An unreferenced blob in blobs/ (a leftover) is not served.
	stray := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	if err := os.WriteFile(s.blobPath(stray), []byte("stray"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Files outside blobs/ the paths below aim at.
	secret := filepath.Join(s.Dir(), "repositories.json")
	if _, err := os.Stat(secret); err != nil {
		t.Fatal(err)
	}
	miss := func(method, path string, status int, code string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			// Some hostile paths are not even URLs; send them raw.
			req = &http.Request{Method: method, URL: mustURL(t, srv.URL), Host: host, Header: http.Header{}}
			req.URL.Opaque = path
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent {
			t.Errorf("%s %s: %d %q; want an error", method, path, resp.StatusCode, body)
			return
		}
		if status != 0 && resp.StatusCode != status {
			t.Errorf("%s %s: status %d, want %d (%s)", method, path, resp.StatusCode, status, body)
		}
		if strings.Contains(string(body), `"images"`) || strings.Contains(string(body), "stray") {
			t.Errorf("%s %s: served a file: %q", method, path, body)
		}
		if code == "" || method == http.MethodHead {
			return
		}
		var e struct {
			Errors []struct{ Code, Message string }
		}
		if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != code || e.Errors[0].Message == "" {
			t.Errorf("%s %s: body %q; want the error JSON with code %s", method, path, body, code)
		}
	}
	miss("GET", "/v2/"+repo+"/manifests/2", 404, codeManifestUnknown)
	miss("HEAD", "/v2/"+repo+"/manifests/2", 404, codeManifestUnknown)
	miss("GET", "/v2/nothere/manifests/latest", 404, codeManifestUnknown)
	miss("GET", "/v2/"+repo+"/manifests/sha256:"+strings.Repeat("0", 64), 404, codeManifestUnknown)
	miss("GET", "/v2/"+repo+"/manifests/"+m.Config.Digest.String(), 404, codeManifestUnknown) // a blob, not a manifest
	miss("GET", "/v2/"+repo+"/blobs/"+stray.String(), 404, codeBlobUnknown)
	miss("GET", "/v2/"+repo+"/blobs/sha256:"+strings.Repeat("0", 64), 404, codeBlobUnknown)
	miss("GET", "/v2/"+repo+"/blobs/md5:abc", 400, codeDigestInvalid)
	miss("PUT", "/v2/"+repo+"/manifests/1", 405, codeUnsupported)
	miss("POST", "/v2/"+repo+"/blobs/uploads/", 405, codeUnsupported)
	miss("DELETE", "/v2/"+repo+"/manifests/"+wantDigest.String(), 405, codeUnsupported)
	miss("GET", "/v2/_catalog", 404, codeUnsupported)
	miss("GET", "/v2/"+repo+"/tags/list", 404, codeUnsupported)
	for _, p := range []string{
		"/v2/../repositories.json",
		"/v2/..%2f..%2frepositories.json/blobs/sha256:" + layer.Hex,
		"/v2/a/blobs/sha256:../../repositories.json",
		"/v2/a/blobs/sha256:..%2f..%2frepositories.json",
		"/v2/a/blobs/" + layer.Hex,
		"/v2/a/blobs/sha256:" + strings.ToUpper(layer.Hex),
		"/v2/a/blobs/sha256:" + layer.Hex + "/../../repositories.json",
		"/v2/a/manifests/../../../repositories.json",
		"/v2/a/manifests/..%2f..%2frepositories.json",
		"/v2/A/manifests/1",
		"/v2//manifests/1",
		"/v2/a//b/manifests/1",
		"/v2/a/manifests/" + strings.Repeat("x", 200),
		"/v2/" + strings.Repeat("a/", 600) + "manifests/1",
		"/v2/a/manifests/1%00",
		"/v1/a/manifests/1",
		"/v2/a/blobs/sha256:" + layer.Hex + "%00",
	} {
		miss("GET", p, 0, "")
	}
	if st := reg.Stats(); st.Misses < 20 {
		t.Errorf("stats: %+v; want every failed request counted", st)
	}
}

func mustURL(t *testing.T, u string) *url.URL {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
