package image

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berthvm/berth/engine/errdefs"
)

// registryAuth is the JSON the docker CLI sends, base64url-encoded, in
// the X-Registry-Auth header of POST /images/create.
type registryAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	ServerAddress string `json:"serveraddress,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// AuthFromHeader decodes a Docker X-Registry-Auth header into credentials
// for WithAuth. An empty header, or one with no credentials in it ("e30="
// is "{}"), gives nil: the store's keychain is used then. A header that is
// not base64url JSON is errdefs.ErrInvalidArgument.
func AuthFromHeader(h string) (authn.Authenticator, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil, nil
	}
	raw, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		// The CLI pads; other clients do not, or use the standard alphabet.
		if raw, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(h, "=")); err != nil {
			if raw, err = base64.StdEncoding.DecodeString(h); err != nil {
				return nil, errdefs.InvalidArgument(fmt.Errorf("invalid X-Registry-Auth header: %w", err))
			}
		}
	}
	var a registryAuth
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid X-Registry-Auth header: %w", err))
	}
	if a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == "" {
		return nil, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      a.Username,
		Password:      a.Password,
		Auth:          a.Auth,
		IdentityToken: a.IdentityToken,
		RegistryToken: a.RegistryToken,
	}), nil
}
