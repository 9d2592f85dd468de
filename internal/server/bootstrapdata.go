package server

import (
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
// servers: the CA (with its key), the service-account key and the join
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

// storeBootstrap seals d into etcd unless an entry for this token exists,
// and only while secret is the current server token's (a server that
// restarts with a rotated-out token must not bring it back). d.AgentToken
// is kept only when it is the current agent token.
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
	// Of two servers storing at once, the first wins; both hold the same.
	cmp := clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
	if len(cur.Kvs) > 0 {
		stored, err := openBootstrap(secret, cur.Kvs[0].Value)
		if err != nil {
			return err
		}
		// Data stored before there was an agent token gets the current one.
		if d.AgentToken == "" || stored.AgentToken == d.AgentToken {
			return nil
		}
		stored.AgentToken = d.AgentToken
		d = stored
		cmp = clientv3.Compare(clientv3.ModRevision(k), "=", cur.Kvs[0].ModRevision)
	}
	sealed, err := sealBootstrap(secret, d)
	if err != nil {
		return fmt.Errorf("seal bootstrap data: %w", err)
	}
	_, err = cli.Txn(ctx).If(cmp, clientv3.Compare(clientv3.ModRevision(joinTokensKey), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpPut(k, string(sealed))).Commit()
	if err != nil {
		return fmt.Errorf("store bootstrap data: %w", err)
	}
	return nil
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
