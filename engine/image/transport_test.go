package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
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
		url        string
		allowPlain bool
		want       string
	}{
		{"http://127.0.0.1:5000/v2/", false, "http://127.0.0.1:5000/v2/"},
		{"http://127.3.2.1:5000/v2/", false, "http://127.3.2.1:5000/v2/"},
		{"http://localhost:5000/v2/", false, "http://localhost:5000/v2/"},
		{"http://[::1]:5000/v2/", false, "http://[::1]:5000/v2/"},
		{"http://10.0.0.5:5000/v2/", false, "https://10.0.0.5:5000/v2/"},
		{"http://registry.local:5000/v2/", false, "https://registry.local:5000/v2/"},
		{"http://10.0.0.5:5000/v2/", true, "http://10.0.0.5:5000/v2/"},
		{"https://ghcr.io/v2/", false, "https://ghcr.io/v2/"},
	} {
		rec := &recordingTransport{}
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		schemeGuard{inner: rec, allowPlain: tc.allowPlain}.RoundTrip(req)
		if rec.got != tc.want {
			t.Errorf("%s (allowPlain %v) went to %s, want %s", tc.url, tc.allowPlain, rec.got, tc.want)
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
	plain := &url.Error{Op: "Get", URL: "https://registry.example.com/v2/", Err: errors.New("http: server gave HTTP response to HTTPS client")}
	refused := &url.Error{Op: "Get", URL: "https://registry.example.com/v2/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		err       error
		class     error
		text      string
		retryable bool
	}{
		{tlsErr, errdefs.ErrUnavailable, "registry registry.example.com: TLS certificate not trusted", false},
		{plain, errdefs.ErrUnavailable, "speaks plain HTTP", false},
		{refused, errdefs.ErrUnavailable, "registry registry.example.com unreachable", true},
		{&transport.Error{StatusCode: 401}, errdefs.ErrUnauthorized, "pull access denied for registry.example.com/app", false},
		{&transport.Error{StatusCode: 404, Errors: []transport.Diagnostic{{Code: transport.ManifestUnknownErrorCode}}}, errdefs.ErrNotFound, "manifest unknown: manifest for registry.example.com/app:1 not found", false},
		{&transport.Error{StatusCode: 503}, errdefs.ErrUnavailable, "registry registry.example.com", true},
		{context.Canceled, context.Canceled, "context canceled", false},
	} {
		got := classify(tc.err, ref)
		if !errors.Is(got, tc.class) || !strings.Contains(got.Error(), tc.text) {
			t.Errorf("classify(%v) = %v; want %v containing %q", tc.err, got, tc.class, tc.text)
		}
		if r := retryable(tc.err); r != tc.retryable {
			t.Errorf("retryable(%v) = %v", tc.err, r)
		}
	}
}
