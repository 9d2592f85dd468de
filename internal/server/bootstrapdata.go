package server

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"skiff/internal/pki"
)

// Bootstrap data is what a joining server needs to be one of the cluster's
// servers: the CAs (with their keys), the service-account key and the join
// tokens. It is kept in etcd, sealed with a key derived from the server
// token's secret, so that etcd data and snapshots do not give away the CA
// key to someone without the token (as k3s does). Rotating the server
// token re-seals it under the new secret (tokens.go).
type bootstrapData struct {
	CACert []byte `json:"caCert"`
	CAKey  []byte `json:"caKey"`
	// Token is the server token, AgentToken the agent token (absent from
	// data stored by older servers, which had one token).
	Token      string `json:"token"`
	AgentToken string `json:"agentToken,omitempty"`
	// ServiceAccountKey signs service-account tokens; every server needs
	// the same one (absent from data stored by older servers).
	ServiceAccountKey []byte `json:"serviceAccountKey,omitempty"`
	// EncryptionConfig is the cluster's EncryptionConfiguration, keys
	// included: what every server encrypts objects at rest with. Servers
	// watch this data and take a new configuration (a key rotation) as
	// it is stored.
	EncryptionConfig []byte `json:"encryptionConfig,omitempty"`
	// EtcdCACert and EtcdCAKey are the etcd CA, which signs only servers'
	// etcd certificates; each server signs its own with it. Absent from
	// data stored by older servers, and by servers whose etcd members
	// still authenticate peers with the cluster CA.
	EtcdCACert []byte `json:"etcdCACert,omitempty"`
	EtcdCAKey  []byte `json:"etcdCAKey,omitempty"`
}

// sealedBootstrap is the stored form.
type sealedBootstrap struct {
	Version int    `json:"version"`
	Salt    []byte `json:"salt"`
	Nonce   []byte `json:"nonce"`
	Data    []byte `json:"data"`
}

const (
	bootstrapPrefix = "/skiff/bootstrap/"
	// bootstrapKDFIterations slows down guessing a token from a stolen
	// snapshot; one derivation per join costs a few tens of milliseconds.
	bootstrapKDFIterations = 200_000
)

// bootstrapKey is where the data sealed with secret lives: named by a hash
// of the secret, so a rotated token would get its own entry.
func bootstrapKey(secret string) string {
	sum := sha256.Sum256([]byte("skiff-bootstrap:" + secret))
	return bootstrapPrefix + hex.EncodeToString(sum[:8])
}

func sealBootstrap(secret string, d bootstrapData) ([]byte, error) {
	plain, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	aead, err := bootstrapAEAD(secret, salt)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return json.Marshal(&sealedBootstrap{Version: 1, Salt: salt, Nonce: nonce, Data: aead.Seal(nil, nonce, plain, nil)})
}

func openBootstrap(secret string, sealed []byte) (bootstrapData, error) {
	var s sealedBootstrap
	var d bootstrapData
	if err := json.Unmarshal(sealed, &s); err != nil {
		return d, fmt.Errorf("decode sealed bootstrap data: %w", err)
	}
	if s.Version != 1 {
		return d, fmt.Errorf("sealed bootstrap data has version %d; this skiff reads version 1: run the same skiff version on every server", s.Version)
	}
	aead, err := bootstrapAEAD(secret, s.Salt)
	if err != nil {
		return d, err
	}
	plain, err := aead.Open(nil, s.Nonce, s.Data, nil)
	if err != nil {
		return d, errors.New("cannot open the cluster's bootstrap data with this token: is it the cluster's current token?")
	}
	if err := json.Unmarshal(plain, &d); err != nil {
		return d, fmt.Errorf("decode bootstrap data: %w", err)
	}
	return d, nil
}

func bootstrapAEAD(secret string, salt []byte) (cipher.AEAD, error) {
	key, err := pbkdf2.Key(sha256.New, secret, salt, bootstrapKDFIterations, 32)
	if err != nil {
		return nil, fmt.Errorf("derive bootstrap key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// errStaleServerToken: this server's token is not the cluster's current
// server token, so it must not store bootstrap data under it.
var errStaleServerToken = errors.New("this server's token is not the cluster's current server token")

// storeBootstrap seals d into etcd, only while secret is the current server
// token's (a server that restarts with a rotated-out token must not bring it
// back). An entry for this token that is already there is kept, but
// completed with what d has and it lacks: the etcd CA and the
// service-account key, which older servers did not store, and the current
// agent token. An etcd CA in d replaces a different stored one: d comes
// from a member whose peers use it, and members of one cluster all use the
// same. d.AgentToken is kept only when it is the current agent token.
func storeBootstrap(ctx context.Context, cli *clientv3.Client, secret string, d bootstrapData) error {
	resp, err := cli.Get(ctx, joinTokensKey)
	if err != nil {
		return fmt.Errorf("read the join tokens: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return errors.New("the join tokens are not recorded yet")
	}
	var rec tokenHashes
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return fmt.Errorf("decode the join tokens: %w", err)
	}
	if rec.Server != pki.TokenSecretHash(secret) {
		return errStaleServerToken
	}
	if _, s, err := pki.ParseToken(d.AgentToken); err != nil || pki.TokenSecretHash(s) != rec.Agent {
		d.AgentToken = ""
	}
	k := bootstrapKey(secret)
	cur, err := cli.Get(ctx, k)
	if err != nil {
		return fmt.Errorf("read bootstrap data: %w", err)
	}
	// Of two servers storing at once, the first wins; the other sees the
	// new entry on its next try and finds nothing to add.
	cmp := clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
	if len(cur.Kvs) > 0 {
		stored, err := openBootstrap(secret, cur.Kvs[0].Value)
		if err != nil {
			return err
		}
		merged, changed := mergeBootstrap(stored, d)
		// Data stored before there was an agent token gets the current one.
		if d.AgentToken != "" && merged.AgentToken != d.AgentToken {
			merged.AgentToken, changed = d.AgentToken, true
		}
		if !changed {
			return nil
		}
		d = merged
		cmp = clientv3.Compare(clientv3.ModRevision(k), "=", cur.Kvs[0].ModRevision)
	}
	sealed, err := sealBootstrap(secret, d)
	if err != nil {
		return fmt.Errorf("seal bootstrap data: %w", err)
	}
	txn, err := cli.Txn(ctx).If(cmp, clientv3.Compare(clientv3.ModRevision(joinTokensKey), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpPut(k, string(sealed))).Commit()
	if err != nil {
		return fmt.Errorf("store bootstrap data: %w", err)
	}
	if !txn.Succeeded {
		return errors.New("store bootstrap data: another server stored it at the same time; trying again")
	}
	return nil
}

// mergeBootstrap is stored completed with what d adds, and whether that
// changed anything.
func mergeBootstrap(stored, d bootstrapData) (bootstrapData, bool) {
	changed := false
	if len(stored.ServiceAccountKey) == 0 && len(d.ServiceAccountKey) > 0 {
		stored.ServiceAccountKey = d.ServiceAccountKey
		changed = true
	}
	if len(d.EtcdCACert) > 0 && (!bytes.Equal(stored.EtcdCACert, d.EtcdCACert) || !bytes.Equal(stored.EtcdCAKey, d.EtcdCAKey)) {
		stored.EtcdCACert, stored.EtcdCAKey = d.EtcdCACert, d.EtcdCAKey
		changed = true
	}
	return stored, changed
}

// loadBootstrap returns the sealed bootstrap data for secret.
func loadBootstrap(ctx context.Context, cli *clientv3.Client, secret string) ([]byte, error) {
	resp, err := cli.Get(ctx, bootstrapKey(secret))
	if err != nil {
		return nil, fmt.Errorf("read bootstrap data: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, errors.New("no bootstrap data for this token in etcd yet")
	}
	return resp.Kvs[0].Value, nil
}

// errBootstrapChanged: the bootstrap data changed between a read and a
// write based on it.
var errBootstrapChanged = errors.New("the bootstrap data changed meanwhile")

// readBootstrap opens the bootstrap data for secret and returns it with its
// etcd mod revision; found is false when there is none.
func readBootstrap(ctx context.Context, cli *clientv3.Client, secret string) (d bootstrapData, rev int64, found bool, err error) {
	resp, err := cli.Get(ctx, bootstrapKey(secret))
	if err != nil {
		return d, 0, false, fmt.Errorf("read bootstrap data: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return d, 0, false, nil
	}
	d, err = openBootstrap(secret, resp.Kvs[0].Value)
	return d, resp.Kvs[0].ModRevision, true, err
}

// writeBootstrap seals d into etcd if the entry's mod revision is still
// rev (0: if there is none yet); errBootstrapChanged if it is not.
func writeBootstrap(ctx context.Context, cli *clientv3.Client, secret string, d bootstrapData, rev int64) error {
	sealed, err := sealBootstrap(secret, d)
	if err != nil {
		return fmt.Errorf("seal bootstrap data: %w", err)
	}
	k := bootstrapKey(secret)
	cmp := clientv3.Compare(clientv3.ModRevision(k), "=", rev)
	if rev == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
	}
	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, string(sealed))).Commit()
	if err != nil {
		return fmt.Errorf("store bootstrap data: %w", err)
	}
	if !resp.Succeeded {
		return errBootstrapChanged
	}
	return nil
}
