// Package encryption keeps objects encrypted at rest in etcd, in the
// formats of Kubernetes' EncryptionConfiguration (apiVersion
// apiserver.config.k8s.io/v1): a value encrypted with the aesgcm provider's
// key "k1" is stored as "k8s:enc:aesgcm:v1:k1:" and the ciphertext, with the
// object's etcd key as authenticated data, so a Kubernetes API server (or
// any tool) given the same configuration reads it.
//
// Which resources are encrypted, and with which keys, comes from the
// configuration alone; the storage layer asks a Config (through a Keeper,
// which can swap it while the server runs) for the transformer of each key.
package encryption

import (
	"bytes"
	"crypto/aes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/apiserver/pkg/storage/value"
	aestransformer "k8s.io/apiserver/pkg/storage/value/encrypt/aes"
	"k8s.io/apiserver/pkg/storage/value/encrypt/identity"
	"k8s.io/apiserver/pkg/storage/value/encrypt/secretbox"
	"sigs.k8s.io/yaml"
)

// Provider names, as in the configuration and in stored values' prefixes.
const (
	ProviderAESGCM    = "aesgcm"
	ProviderAESCBC    = "aescbc"
	ProviderSecretbox = "secretbox"
	ProviderIdentity  = "identity"
)

// encryptedPrefix starts every encrypted value, whatever the provider.
const encryptedPrefix = "k8s:enc:"

// registryPrefix is where the store keeps objects:
// /registry/<group>/<resource>/... (no group segment for the core group).
const registryPrefix = "/registry/"

// Config is a parsed encryption configuration.
type Config struct {
	raw   []byte
	v1    apiserverv1.EncryptionConfiguration
	rules []rule
}

// rule is one resource of the configuration: the keys it covers and how
// their values are transformed.
type rule struct {
	resource    string // as written: "secrets", "deployments.apps", "*.example.com"
	prefix      string // the etcd keys it covers
	transformer value.Transformer
	// write names the provider and key new values are written with, such
	// as "aesgcm:k1", or "identity".
	write string
}

// Parse reads an EncryptionConfiguration. KMS providers are not supported
// (they need a plugin process); nor are the wildcards "*." and "*.*",
// which would cover keys the store does not own.
func Parse(data []byte) (*Config, error) {
	var v1 apiserverv1.EncryptionConfiguration
	if err := yaml.UnmarshalStrict(data, &v1); err != nil {
		return nil, fmt.Errorf("encryption configuration: %w", err)
	}
	if v1.APIVersion != apiserverv1.SchemeGroupVersion.String() || v1.Kind != "EncryptionConfiguration" {
		return nil, fmt.Errorf("encryption configuration: apiVersion %q kind %q: want apiVersion %s kind EncryptionConfiguration",
			v1.APIVersion, v1.Kind, apiserverv1.SchemeGroupVersion)
	}
	c := &Config{raw: bytes.Clone(data), v1: v1}
	seen := map[string]bool{}
	for i, rc := range v1.Resources {
		if len(rc.Resources) == 0 {
			return nil, fmt.Errorf("encryption configuration: resources[%d]: no resources listed", i)
		}
		if len(rc.Providers) == 0 {
			return nil, fmt.Errorf("encryption configuration: resources[%d]: no providers listed", i)
		}
		transformers, write, err := providerTransformers(rc.Providers, fmt.Sprintf("resources[%d]", i))
		if err != nil {
			return nil, err
		}
		t := value.NewPrefixTransformers(fmt.Errorf("no provider of resources[%d] can read this value", i), transformers...)
		for _, res := range rc.Resources {
			prefix, err := resourcePrefix(res)
			if err != nil {
				return nil, fmt.Errorf("encryption configuration: resources[%d]: %w", i, err)
			}
			if seen[prefix] {
				return nil, fmt.Errorf("encryption configuration: resource %q is listed twice", res)
			}
			seen[prefix] = true
			c.rules = append(c.rules, rule{resource: res, prefix: prefix, transformer: t, write: write})
		}
	}
	return c, nil
}

// resourcePrefix is the etcd key prefix of a resource as the configuration
// names it: "secrets" (core group), "deployments.apps", "*.apps".
func resourcePrefix(res string) (string, error) {
	if res == "*.*" || res == "*." {
		return "", fmt.Errorf("resource %q: wildcards over the core group are not supported; list the resources by name", res)
	}
	if res != strings.ToLower(res) || strings.ContainsAny(res, "/ ") || res == "" {
		return "", fmt.Errorf("resource %q: want a lowercase resource name such as secrets or deployments.apps", res)
	}
	name, group, _ := strings.Cut(res, ".")
	if name == "*" {
		return registryPrefix + group + "/", nil
	}
	if strings.Contains(name, "*") || strings.Contains(group, "*") {
		return "", fmt.Errorf("resource %q: a wildcard stands only for the whole resource name (*.group)", res)
	}
	return path.Join(registryPrefix, group, name) + "/", nil
}

// providerTransformers builds one prefix transformer per key of each
// provider, in order: the first is the one that writes.
func providerTransformers(providers []apiserverv1.ProviderConfiguration, where string) ([]value.PrefixTransformer, string, error) {
	var out []value.PrefixTransformer
	write := ""
	for j, p := range providers {
		at := fmt.Sprintf("%s.providers[%d]", where, j)
		n := 0
		var ts []value.PrefixTransformer
		var err error
		name := ""
		if p.AESGCM != nil {
			n++
			name = ProviderAESGCM
			ts, err = keyTransformers(ProviderAESGCM, p.AESGCM.Keys, at, []int{16, 24, 32})
		}
		if p.AESCBC != nil {
			n++
			name = ProviderAESCBC
			ts, err = keyTransformers(ProviderAESCBC, p.AESCBC.Keys, at, []int{32})
		}
		if p.Secretbox != nil {
			n++
			name = ProviderSecretbox
			ts, err = keyTransformers(ProviderSecretbox, p.Secretbox.Keys, at, []int{32})
		}
		if p.Identity != nil {
			n++
			name = ProviderIdentity
			ts = []value.PrefixTransformer{{Transformer: identity.NewEncryptCheckTransformer(), Prefix: []byte{}}}
		}
		if p.KMS != nil {
			return nil, "", fmt.Errorf("encryption configuration: %s: kms providers are not supported; use aesgcm, aescbc, secretbox or identity", at)
		}
		if n != 1 {
			return nil, "", fmt.Errorf("encryption configuration: %s: want exactly one provider, got %d", at, n)
		}
		if err != nil {
			return nil, "", err
		}
		if write == "" {
			write = name
			if name != ProviderIdentity {
				write = name + ":" + strings.TrimSuffix(strings.TrimPrefix(string(ts[0].Prefix), encryptedPrefix+name+":v1:"), ":")
			}
		}
		out = append(out, ts...)
	}
	return out, write, nil
}

func keyTransformers(provider string, keys []apiserverv1.Key, at string, sizes []int) ([]value.PrefixTransformer, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("encryption configuration: %s.%s: no keys", at, provider)
	}
	var out []value.PrefixTransformer
	for k, key := range keys {
		kat := fmt.Sprintf("%s.%s.keys[%d]", at, provider, k)
		if key.Name == "" || strings.Contains(key.Name, ":") {
			return nil, fmt.Errorf("encryption configuration: %s: a key needs a name without ':'", kat)
		}
		secret, err := base64.StdEncoding.DecodeString(key.Secret)
		if err != nil {
			return nil, fmt.Errorf("encryption configuration: %s (%s): the secret is not base64: %w", kat, key.Name, err)
		}
		ok := false
		for _, n := range sizes {
			ok = ok || len(secret) == n
		}
		if !ok {
			return nil, fmt.Errorf("encryption configuration: %s (%s): a %s key has %v bytes, not %d", kat, key.Name, provider, sizes, len(secret))
		}
		var t value.Transformer
		switch provider {
		case ProviderSecretbox:
			t = secretbox.NewSecretboxTransformer([32]byte(secret))
		default:
			block, err := aes.NewCipher(secret)
			if err != nil {
				return nil, fmt.Errorf("encryption configuration: %s (%s): %w", kat, key.Name, err)
			}
			if provider == ProviderAESCBC {
				t = aestransformer.NewCBCTransformer(block)
			} else if t, err = aestransformer.NewGCMTransformer(block); err != nil {
				return nil, fmt.Errorf("encryption configuration: %s (%s): %w", kat, key.Name, err)
			}
		}
		out = append(out, value.PrefixTransformer{Transformer: t, Prefix: []byte(encryptedPrefix + provider + ":v1:" + key.Name + ":")})
	}
	return out, nil
}

// Bytes is the configuration as it was read.
func (c *Config) Bytes() []byte { return bytes.Clone(c.raw) }

// Hash names the configuration's content, for telling servers' copies apart.
func (c *Config) Hash() string {
	sum := sha256.Sum256(c.raw)
	return hex.EncodeToString(sum[:8])
}

// TransformerFor returns the transformer of the values at an etcd key, or
// nil when the configuration does not cover it (its values are stored as
// they are). The first resource listed that covers the key wins.
func (c *Config) TransformerFor(key string) value.Transformer {
	if r := c.ruleFor(key); r != nil {
		return r.transformer
	}
	return nil
}

func (c *Config) ruleFor(key string) *rule {
	if c == nil {
		return nil
	}
	for i := range c.rules {
		if strings.HasPrefix(key, c.rules[i].prefix) {
			return &c.rules[i]
		}
	}
	return nil
}

// ResourceKey is what a resource's new values are written with.
type ResourceKey struct {
	Resource string
	// Prefix is the etcd key prefix the resource covers.
	Prefix string
	// Write is the provider and key name, such as "aesgcm:k1", or
	// "identity".
	Write string
}

// WriteKeys lists the configured resources and the key each writes with.
func (c *Config) WriteKeys() []ResourceKey {
	out := make([]ResourceKey, len(c.rules))
	for i, r := range c.rules {
		out[i] = ResourceKey{Resource: r.resource, Prefix: r.prefix, Write: r.write}
	}
	return out
}

// KeyOf names what a stored value is encrypted with: "aesgcm:k1" for a
// value stored as "k8s:enc:aesgcm:v1:k1:...", or "identity" for a value
// stored as it is.
func KeyOf(stored []byte) string {
	if !bytes.HasPrefix(stored, []byte(encryptedPrefix)) {
		return ProviderIdentity
	}
	// k8s:enc:<provider>:v1:<name>:<data>
	parts := bytes.SplitN(stored[len(encryptedPrefix):], []byte(":"), 4)
	if len(parts) < 4 {
		return "unknown"
	}
	return string(parts[0]) + ":" + string(parts[2])
}

// Generate returns skiff's default configuration: Secrets encrypted with a
// new random AES-GCM key, and values stored before encryption was on still
// read (identity).
func Generate(now time.Time) ([]byte, error) {
	key, err := newKey(ProviderAESGCM, now)
	if err != nil {
		return nil, err
	}
	cfg := apiserverv1.EncryptionConfiguration{
		Resources: []apiserverv1.ResourceConfiguration{{
			Resources: []string{"secrets"},
			Providers: []apiserverv1.ProviderConfiguration{
				{AESGCM: &apiserverv1.AESConfiguration{Keys: []apiserverv1.Key{key}}},
				{Identity: &apiserverv1.IdentityConfiguration{}},
			},
		}},
	}
	return marshal(cfg)
}

func marshal(cfg apiserverv1.EncryptionConfiguration) ([]byte, error) {
	cfg.APIVersion = apiserverv1.SchemeGroupVersion.String()
	cfg.Kind = "EncryptionConfiguration"
	return yaml.Marshal(cfg)
}

// newKey makes a random key for provider, named after the time.
func newKey(provider string, now time.Time) (apiserverv1.Key, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return apiserverv1.Key{}, fmt.Errorf("make an encryption key: %w", err)
	}
	return apiserverv1.Key{
		Name:   provider + "key-" + now.UTC().Format("20060102T150405Z"),
		Secret: base64.StdEncoding.EncodeToString(secret),
	}, nil
}

// ErrNoEncryption: rotation asked of a configuration that encrypts nothing.
var ErrNoEncryption = errors.New("no resource is encrypted: the first provider of every resource is identity")

// Rotation returns the two steps of a key rotation: staged knows a new key
// of each encrypting resource's first provider but still writes with the
// old one; active writes with the new key and still reads the old ones.
// Every server must read with staged before any writes with active, or a
// server could meet a value it cannot read. It returns the new key's name.
func (c *Config) Rotation(now time.Time) (staged, active []byte, name string, err error) {
	stagedCfg, activeCfg := *c.v1.DeepCopy(), *c.v1.DeepCopy()
	rotated := false
	for i := range stagedCfg.Resources {
		if len(stagedCfg.Resources[i].Providers) == 0 {
			continue
		}
		var provider string
		sp, ap := &stagedCfg.Resources[i].Providers[0], &activeCfg.Resources[i].Providers[0]
		var sk, ak *[]apiserverv1.Key
		switch {
		case sp.AESGCM != nil:
			provider, sk, ak = ProviderAESGCM, &sp.AESGCM.Keys, &ap.AESGCM.Keys
		case sp.AESCBC != nil:
			provider, sk, ak = ProviderAESCBC, &sp.AESCBC.Keys, &ap.AESCBC.Keys
		case sp.Secretbox != nil:
			provider, sk, ak = ProviderSecretbox, &sp.Secretbox.Keys, &ap.Secretbox.Keys
		default:
			continue
		}
		key, err := newKey(provider, now)
		if err != nil {
			return nil, nil, "", err
		}
		for _, k := range *sk {
			if k.Name == key.Name {
				return nil, nil, "", fmt.Errorf("a key named %s exists already: rotate again in a second", key.Name)
			}
		}
		*sk = append(*sk, key)
		*ak = append([]apiserverv1.Key{key}, *ak...)
		name = key.Name
		rotated = true
	}
	if !rotated {
		return nil, nil, "", ErrNoEncryption
	}
	if staged, err = marshal(stagedCfg); err != nil {
		return nil, nil, "", err
	}
	if active, err = marshal(activeCfg); err != nil {
		return nil, nil, "", err
	}
	return staged, active, name, nil
}
