package serviceaccount

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
)

// Discovery paths, as upstream.
const (
	OpenIDConfigPath = "/.well-known/openid-configuration"
	JWKSPath         = "/openid/v1/jwks"
)

type jwk struct {
	Use string `json:"use"`
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

type openIDConfig struct {
	Issuer        string   `json:"issuer"`
	JWKSURI       string   `json:"jwks_uri"`
	ResponseTypes []string `json:"response_types_supported"`
	SubjectTypes  []string `json:"subject_types_supported"`
	SigningAlgs   []string `json:"id_token_signing_alg_values_supported"`
}

// DiscoveryHandlers serve the issuer's OpenID configuration (at
// OpenIDConfigPath) and its public keys (at JWKSPath), so systems outside
// the cluster can verify service-account tokens. The issuer must be an
// https URL; jwksURI, when empty, is the issuer's origin with JWKSPath.
// Both documents are public and cacheable, as upstream.
func DiscoveryHandlers(issuer, jwksURI string, keys []crypto.PublicKey) (openIDConfiguration, jwks http.Handler, err error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, nil, fmt.Errorf("serviceaccount: discovery needs an https issuer URL, not %q", issuer)
	}
	if jwksURI == "" {
		jwksURI = (&url.URL{Scheme: "https", Host: u.Host, Path: JWKSPath}).String()
	}
	if len(keys) == 0 {
		return nil, nil, errors.New("serviceaccount: discovery needs at least one key")
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{}
	algs := []string{}
	for _, k := range keys {
		j, err := publicJWK(k)
		if err != nil {
			return nil, nil, err
		}
		set.Keys = append(set.Keys, j)
		if !slices.Contains(algs, j.Alg) {
			algs = append(algs, j.Alg)
		}
	}
	cfgJSON, err := json.Marshal(openIDConfig{
		Issuer: issuer, JWKSURI: jwksURI,
		ResponseTypes: []string{"id_token"}, SubjectTypes: []string{"public"}, SigningAlgs: algs,
	})
	if err != nil {
		return nil, nil, err
	}
	keysJSON, err := json.Marshal(set)
	if err != nil {
		return nil, nil, err
	}
	return static(cfgJSON, "application/json"), static(keysJSON, "application/jwk-set+json"), nil
}

func static(body []byte, contentType string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(body)
	})
}

func publicJWK(k crypto.PublicKey) (jwk, error) {
	method, err := signingMethod(k)
	if err != nil {
		return jwk{}, err
	}
	kid, err := KeyID(k)
	if err != nil {
		return jwk{}, err
	}
	j := jwk{Use: "sig", Kid: kid, Alg: method.Alg()}
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := k.(type) {
	case *rsa.PublicKey:
		j.Kty = "RSA"
		j.N = b64(k.N.Bytes())
		j.E = b64(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		j.Kty = "EC"
		j.Crv = k.Curve.Params().Name
		size := (k.Curve.Params().BitSize + 7) / 8
		ecdh, err := k.Bytes() // 0x04 || X || Y
		if err != nil {
			return jwk{}, fmt.Errorf("serviceaccount: encode key: %w", err)
		}
		j.X = b64(ecdh[1 : 1+size])
		j.Y = b64(ecdh[1+size:])
	}
	return j, nil
}
