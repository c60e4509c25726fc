package image

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/testenv"
)

// fakeTokenServer is a fake of a registry token service (what auth.docker.io
// is to Docker Hub): it issues ES256 JWTs the real docker-registry, run in
// token mode, verifies against the certificate we give it. Named users get
// what they ask for; anonymous callers get a token with no access.
type fakeTokenServer struct {
	URL     string
	key     *ecdsa.PrivateKey
	certDER []byte
	users   map[string]string

	mu       sync.Mutex
	requests int
}

// newFakeTokenServer returns the token service, the path of the CA bundle
// the registry must trust, and a listener whose address is the realm's
// host: go-containerregistry only trusts a loopback realm on the
// registry's own host:port, so the test serves the token service and a
// proxy to the registry on this one address.
func newFakeTokenServer(t *testing.T, users map[string]string) (*fakeTokenServer, string, net.Listener) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "berth-test-token-issuer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "token-ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTokenServer{URL: "http://" + l.Addr().String() + "/token", key: key, certDER: der, users: users}
	return f, bundle, l
}

// serveWithRegistry serves the token service at /token on l and proxies
// everything else to the registry at host.
func (f *fakeTokenServer) serveWithRegistry(t *testing.T, l net.Listener, host string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/token", f.serve)
	mux.Handle("/", httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host}))
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

func (f *fakeTokenServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	user, pass, hasAuth := r.BasicAuth()
	if hasAuth && f.users[user] != pass {
		http.Error(w, `{"details":"incorrect username or password"}`, http.StatusUnauthorized)
		return
	}
	type access struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
	granted := []access{}
	if hasAuth {
		for _, scope := range r.URL.Query()["scope"] {
			parts := strings.Split(scope, ":")
			if len(parts) == 3 {
				granted = append(granted, access{Type: parts[0], Name: parts[1], Actions: strings.Split(parts[2], ",")})
			}
		}
	}
	now := time.Now()
	claims := map[string]any{
		"iss": "berth-test-issuer", "sub": user, "aud": r.URL.Query().Get("service"),
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": fmt.Sprint(now.UnixNano()), "access": granted,
	}
	header := map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(f.certDER)}}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(header) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	rr, ss, err := ecdsa.Sign(rand.Reader, f.key, sum[:])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sig := make([]byte, 64)
	rr.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	tok := signing + "." + base64.RawURLEncoding.EncodeToString(sig)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300, "issued_at": now.Format(time.RFC3339)})
}

// TestPullTokenAuth runs the real registry in token mode (as Docker Hub
// works) with a fake token service: anonymous pulls are refused, pulls
// with credentials go through the bearer-token dance.
func TestPullTokenAuth(t *testing.T) {
	tokens, bundle, l := newFakeTokenServer(t, map[string]string{"berth": "s3cret"})
	reg := testenv.StartTokenRegistry(t, testenv.TokenAuth{
		Realm: tokens.URL, Service: "berth-test-registry", Issuer: "berth-test-issuer", RootCertBundle: bundle,
	})
	tokens.serveWithRegistry(t, l, reg.Host)
	creds := &authn.Basic{Username: "berth", Password: "s3cret"}
	ref := l.Addr().String() + "/private/tok:1"
	push(t, ref, testImage(t, hostPlatform, 6, 16<<10, false), creds)
	ctx := context.Background()
	s := openTestStore(t)

	_, err := s.Pull(ctx, ref)
	if !errors.Is(err, errdefs.ErrUnauthorized) || !strings.Contains(err.Error(), "pull access denied") {
		t.Errorf("anonymous pull: %v; want Unauthorized", err)
	}
	if _, err := s.Pull(ctx, ref, WithAuth(&authn.Basic{Username: "berth", Password: "nope"})); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Errorf("pull with a wrong password: %v; want Unauthorized", err)
	}
	tokens.mu.Lock()
	before := tokens.requests
	tokens.mu.Unlock()
	res, err := s.Pull(ctx, ref, WithAuth(creds))
	if err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}
	tokens.mu.Lock()
	after := tokens.requests
	tokens.mu.Unlock()
	if after == before {
		t.Error("the pull never asked the token service")
	}
	if len(res.Image.RepoTags) != 1 {
		t.Errorf("RepoTags %v", res.Image.RepoTags)
	}
}

func TestAuthFromHeader(t *testing.T) {
	enc := func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }
	for _, h := range []string{"", "e30=", enc(`{"serveraddress":"x"}`)} {
		a, err := AuthFromHeader(h)
		if err != nil || a != nil {
			t.Errorf("AuthFromHeader(%q) = %v, %v; want nil, nil", h, a, err)
		}
	}
	for _, h := range []string{
		enc(`{"username":"berth","password":"s3cret","serveraddress":"127.0.0.1:5000"}`),
		strings.TrimRight(enc(`{"username":"berth","password":"s3cret"}`), "="),
	} {
		a, err := AuthFromHeader(h)
		if err != nil || a == nil {
			t.Fatalf("AuthFromHeader(%q) = %v, %v", h, a, err)
		}
		cfg, err := a.Authorization()
		if err != nil || cfg.Username != "berth" || cfg.Password != "s3cret" {
			t.Errorf("credentials %+v, %v", cfg, err)
		}
	}
	if _, err := AuthFromHeader("!!not base64!!"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad header: %v", err)
	}
	if _, err := AuthFromHeader(enc("not json")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad JSON: %v", err)
	}
}
