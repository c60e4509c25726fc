package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berthvm/berth/engine/errdefs"
)

// recordingTransport answers nothing; it records the URL it was asked for.
type recordingTransport struct{ got string }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = req.URL.String()
	return nil, errors.New("recorded")
}

func TestSchemeGuardAllowsPlainHTTPOnlyToLoopback(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string
	}{
		{"http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/v2/"},
		{"http://127.3.2.1:5000/v2/", "http://127.3.2.1:5000/v2/"},
		{"http://localhost:5000/v2/", "http://localhost:5000/v2/"},
		{"http://[::1]:5000/v2/", "http://[::1]:5000/v2/"},
		{"http://10.0.0.5:5000/v2/", "https://10.0.0.5:5000/v2/"},
		{"http://registry.local:5000/v2/", "https://registry.local:5000/v2/"},
		{"https://ghcr.io/v2/", "https://ghcr.io/v2/"},
	} {
		rec := &recordingTransport{}
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		schemeGuard{inner: rec}.RoundTrip(req)
		if rec.got != tc.want {
			t.Errorf("%s went to %s, want %s", tc.url, rec.got, tc.want)
		}
		if req.URL.String() != tc.url {
			t.Errorf("the caller's request was modified: %s", req.URL)
		}
	}
}

func TestPlatformMatches(t *testing.T) {
	arm64 := func(v string) v1.Platform { return v1.Platform{OS: "linux", Architecture: "arm64", Variant: v} }
	for _, tc := range []struct {
		have, want v1.Platform
		ok         bool
	}{
		{arm64("v8"), arm64(""), true},
		{arm64(""), arm64("v8"), true},
		{arm64("v8"), arm64("v8"), true},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, false},
		{v1.Platform{OS: "linux", Architecture: "amd64"}, arm64(""), false},
		{v1.Platform{OS: "windows", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "amd64"}, false},
	} {
		if got := platformMatches(tc.have, tc.want); got != tc.ok {
			t.Errorf("platformMatches(%v, %v) = %v", tc.have, tc.want, got)
		}
	}
}

func TestClassify(t *testing.T) {
	ref, _ := ParseReference("registry.example.com/app:1")
	tlsErr := &url.Error{Op: "Get", URL: "https://registry.example.com/v2/", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}
	plain := &url.Error{Op: "Get", URL: "https://registry.example.com/v2/", Err: http.ErrSchemeMismatch}
	plainRecord := fmt.Errorf("ping: %w", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake", RecordHeader: [5]byte{'H', 'T', 'T', 'P', '/'}})
	refused := &url.Error{Op: "Get", URL: "https://registry.example.com/v2/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	noHost := fmt.Errorf("ping: %w", &url.Error{Op: "Get", URL: "https://nosuch.example/v2/", Err: &net.DNSError{Err: "no such host", Name: "nosuch.example", IsNotFound: true}})
	refusedBare := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	for _, tc := range []struct {
		err       error
		class     error
		text      string
		retryable bool
	}{
		{tlsErr, errdefs.ErrUnavailable, "registry registry.example.com: TLS certificate not trusted", false},
		{plain, errdefs.ErrUnavailable, "speaks plain HTTP", false},
		{plainRecord, errdefs.ErrUnavailable, "speaks plain HTTP", false},
		{refused, errdefs.ErrUnavailable, "registry registry.example.com unreachable", true},
		{noHost, errdefs.ErrUnavailable, "registry registry.example.com unreachable", true},
		{refusedBare, errdefs.ErrUnavailable, "registry registry.example.com unreachable", true},
		{errors.New("connection refused, said a proxy in words"), nil, "", false},
		{&transport.Error{StatusCode: 401}, errdefs.ErrUnauthorized, "pull access denied for registry.example.com/app", false},
		{&transport.Error{StatusCode: 404, Errors: []transport.Diagnostic{{Code: transport.ManifestUnknownErrorCode}}}, errdefs.ErrNotFound, "manifest unknown: manifest for registry.example.com/app:1 not found", false},
		{&transport.Error{StatusCode: 503}, errdefs.ErrUnavailable, "registry registry.example.com", true},
		{context.Canceled, context.Canceled, "context canceled", false},
	} {
		got := classify(tc.err, ref)
		if tc.class == nil {
			// Only typed errors are classified, never words in a message.
			if got != tc.err {
				t.Errorf("classify(%v) = %v; want it unchanged", tc.err, got)
			}
		} else if !errors.Is(got, tc.class) || !strings.Contains(got.Error(), tc.text) {
			t.Errorf("classify(%v) = %v; want %v containing %q", tc.err, got, tc.class, tc.text)
		}
		if r := retryable(tc.err); r != tc.retryable {
			t.Errorf("retryable(%v) = %v", tc.err, r)
		}
	}
}

// TestSchemeMismatchFromARealServer checks that the plain-HTTP answer to
// an HTTPS request, as net/http really reports it, is recognised by type.
func TestSchemeMismatchFromARealServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, err := srv.Client().Get(strings.Replace(srv.URL, "http://", "https://", 1) + "/v2/")
	if err == nil || !isSchemeMismatch(err) {
		t.Fatalf("GET https:// of a plain HTTP server = %v; want it recognised as a scheme mismatch", err)
	}
	ref, _ := ParseReference("registry.example.com/app:1")
	if got := classify(err, ref); !errors.Is(got, errdefs.ErrUnavailable) || !strings.Contains(got.Error(), "speaks plain HTTP") {
		t.Errorf("classify = %v", got)
	}
}
