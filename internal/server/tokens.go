package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"skiff/internal/apiserver"
	"skiff/internal/config"
	"skiff/internal/pki"
)

// The cluster has two join tokens, as k3s: the server token
// (K10<hash>::server:<secret>, <data-dir>/server/token) joins servers and
// agents and seals the bootstrap data; the agent token
// (K10<hash>::node:<secret>, <data-dir>/server/agent-token) joins agents
// only. Every server checks a presented token against the hashes of the
// current ones in etcd (joinTokensKey), read per request with a short
// cache, so a token rotated on one server works, and the old one stops
// working, on all of them without a restart. The agent token itself is in
// the sealed bootstrap data, from which joining servers, and servers that
// see it rotated, take it.

// joinTokensKey holds the current tokens' hashes (tokenHashes).
const joinTokensKey = "/skiff/join-tokens"

const (
	// tokenCacheTTL is how long a server trusts the hashes it read: how
	// long an old token may still work on another server after a rotation.
	tokenCacheTTL = 5 * time.Second
	// tokenSyncInterval is how often a server checks that its agent-token
	// file is the cluster's current one.
	tokenSyncInterval = 30 * time.Second
)

// tokenHashes is the stored record: pki.TokenSecretHash of each secret.
type tokenHashes struct {
	Server string `json:"server"`
	Agent  string `json:"agent"`
}

// joinTokens implements apiserver.JoinTokens over etcd.
type joinTokens struct {
	cli    *clientv3.Client
	layout config.Layout
	caPEM  []byte
	log    *slog.Logger
	// flagToken is --token: adopted as this server's token file when it is
	// the cluster's current server token (a restart after a rotation).
	flagToken string

	// changed wakes run when a read finds the tokens rotated elsewhere.
	changed chan struct{}

	mu     sync.Mutex
	cached tokenHashes
	stored bool // cached came from etcd (else from the local files)
	readAt time.Time
}

func newJoinTokens(cli *clientv3.Client, layout config.Layout, caPEM []byte, flagToken string, log *slog.Logger) *joinTokens {
	return &joinTokens{cli: cli, layout: layout, caPEM: caPEM, flagToken: flagToken, log: log.With("component", "join-tokens"),
		changed: make(chan struct{}, 1)}
}

// Role tells what secret grants.
func (j *joinTokens) Role(ctx context.Context, secret string) (apiserver.JoinRole, error) {
	h := pki.TokenSecretHash(secret)
	rec, err := j.hashes(ctx, tokenCacheTTL)
	if err != nil {
		return apiserver.JoinRoleNone, err
	}
	if role := rec.role(h); role != apiserver.JoinRoleNone {
		return role, nil
	}
	// Perhaps rotated on another server a moment ago: look again. A
	// wrong token costs one small read, less than its TLS handshake did.
	if rec, err = j.hashes(ctx, 0); err != nil {
		return apiserver.JoinRoleNone, err
	}
	return rec.role(h), nil
}

func (r tokenHashes) role(h string) apiserver.JoinRole {
	switch {
	case r.Server != "" && subtle.ConstantTimeCompare([]byte(h), []byte(r.Server)) == 1:
		return apiserver.JoinRoleServer
	case r.Agent != "" && subtle.ConstantTimeCompare([]byte(h), []byte(r.Agent)) == 1:
		return apiserver.JoinRoleAgent
	}
	return apiserver.JoinRoleNone
}

// hashes returns the current tokens' hashes, read from etcd unless the
// cached ones are younger than maxAge. Until a server has recorded them
// (a new cluster's first moments, an upgrade) they are this server's
// token files'.
func (j *joinTokens) hashes(ctx context.Context, maxAge time.Duration) (tokenHashes, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.readAt.IsZero() && time.Since(j.readAt) < maxAge {
		return j.cached, nil
	}
	rec, _, found, err := j.read(ctx)
	if err != nil {
		return tokenHashes{}, err
	}
	if !found {
		if rec, err = j.local(); err != nil {
			return tokenHashes{}, err
		}
	}
	if found && j.stored && rec != j.cached {
		// Rotated on another server: bring the token files up to date.
		select {
		case j.changed <- struct{}{}:
		default:
		}
	}
	j.cached, j.stored, j.readAt = rec, found, time.Now()
	return rec, nil
}

// remember caches a record this server just wrote.
func (j *joinTokens) remember(rec tokenHashes) {
	j.mu.Lock()
	j.cached, j.stored, j.readAt = rec, true, time.Now()
	j.mu.Unlock()
}

func (j *joinTokens) read(ctx context.Context) (rec tokenHashes, rev int64, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := j.cli.Get(ctx, joinTokensKey)
	if err != nil {
		return rec, 0, false, fmt.Errorf("read the join tokens: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return rec, 0, false, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return rec, 0, false, fmt.Errorf("decode the join tokens: %w", err)
	}
	return rec, resp.Kvs[0].ModRevision, true, nil
}

// local is the hashes of this server's token files.
func (j *joinTokens) local() (tokenHashes, error) {
	server, err := pki.ReadTokenSecret(j.layout.TokenFile())
	if err != nil {
		return tokenHashes{}, err
	}
	agent, err := pki.ReadTokenSecret(j.layout.AgentTokenFile())
	if err != nil {
		return tokenHashes{}, err
	}
	return tokenHashes{Server: pki.TokenSecretHash(server), Agent: pki.TokenSecretHash(agent)}, nil
}

// run records the tokens (first server, or the first upgraded one) and
// keeps this server's token files the cluster's current ones, until ctx
// ends. The returned channel is closed when it has stopped.
func (j *joinTokens) run(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if err := j.sync(ctx); err != nil && ctx.Err() == nil {
				j.log.Warn("cannot check the join tokens yet; retrying", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(tokenSyncInterval):
			case <-j.changed:
			}
		}
	}()
	return done
}

// sync records the hashes of this server's tokens when none are, and
// otherwise brings this server's token files up to date: --token when it
// is the current server token, the agent token from the bootstrap data.
func (j *joinTokens) sync(ctx context.Context) error {
	rec, _, found, err := j.read(ctx)
	if err != nil {
		return err
	}
	if !found {
		local, err := j.local()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		data, _ := json.Marshal(local)
		resp, err := j.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(joinTokensKey), "=", 0)).
			Then(clientv3.OpPut(joinTokensKey, string(data))).Commit()
		if err != nil {
			return fmt.Errorf("record the join tokens: %w", err)
		}
		if resp.Succeeded {
			j.log.Info("recorded the join tokens' hashes for every server")
			j.remember(local)
			return nil
		}
		return j.sync(ctx) // another server recorded its own first
	}
	j.remember(rec)
	serverSecret, err := pki.ReadTokenSecret(j.layout.TokenFile())
	if err != nil {
		return err
	}
	if pki.TokenSecretHash(serverSecret) != rec.Server && j.flagToken != "" {
		if _, flagSecret, err := pki.ParseToken(j.flagToken); err == nil && pki.TokenSecretHash(flagSecret) == rec.Server {
			if err := pki.WriteToken(j.layout.TokenFile(), pki.FormatToken(j.caPEM, pki.ServerTokenUser, flagSecret)); err != nil {
				return err
			}
			j.log.Info("took the cluster's current server token from --token", "file", j.layout.TokenFile())
			serverSecret = flagSecret
		}
	}
	if pki.TokenSecretHash(serverSecret) != rec.Server {
		j.log.Warn("this server's token file does not hold the cluster's current server token (it was rotated on another server): restart this server with --token set to the new one (`skiff token` on that server)",
			"file", j.layout.TokenFile())
		return nil
	}
	agentSecret, err := pki.ReadTokenSecret(j.layout.AgentTokenFile())
	if err == nil && pki.TokenSecretHash(agentSecret) == rec.Agent {
		return nil
	}
	sealed, err := loadBootstrap(ctx, j.cli, serverSecret)
	if err != nil {
		return fmt.Errorf("the agent token was rotated; take the new one from the bootstrap data: %w", err)
	}
	data, err := openBootstrap(serverSecret, sealed)
	if err != nil {
		return err
	}
	_, s, err := pki.ParseToken(data.AgentToken)
	if err != nil || pki.TokenSecretHash(s) != rec.Agent {
		return errors.New("the bootstrap data holds no current agent token")
	}
	if err := pki.WriteToken(j.layout.AgentTokenFile(), data.AgentToken); err != nil {
		return err
	}
	j.log.Info("took the cluster's current agent token", "file", j.layout.AgentTokenFile())
	return nil
}

// Rotate replaces a token on every server at once: the record in etcd and
// the bootstrap data (re-sealed under a new server secret, or holding the
// new agent token) change in one transaction, then this server's token
// file. Nodes that joined keep their certificates; the old token joins no
// one any more.
func (j *joinTokens) Rotate(ctx context.Context, role apiserver.JoinRole, secret string) (string, error) {
	if secret == "" {
		var err error
		if secret, err = pki.NewTokenSecret(); err != nil {
			return "", err
		}
	}
	// Records the tokens if no server has yet; what else it finds wrong
	// does not stop a rotation.
	if err := j.sync(ctx); err != nil {
		j.log.Warn("rotating a token: this server's token files are not up to date", "err", err)
	}
	rec, rev, found, err := j.read(ctx)
	if err != nil || !found {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("the join tokens are not recorded yet: %v", err))
	}
	ownSecret, err := pki.ReadTokenSecret(j.layout.TokenFile())
	if err != nil {
		return "", err
	}
	if pki.TokenSecretHash(ownSecret) != rec.Server {
		return "", apierrors.NewConflict(tokensResource(), "server", errors.New(
			"this server's token file does not hold the cluster's current server token: rotate on a server that has it, or restart this one with --token set to it"))
	}
	h := pki.TokenSecretHash(secret)
	if h == rec.Server || h == rec.Agent {
		return "", apierrors.NewBadRequest("the new token's secret is one of the current tokens'")
	}
	// The bootstrap data, when kept (a server started with --cluster-init).
	oldKey := bootstrapKey(ownSecret)
	resp, err := j.cli.Get(ctx, oldKey)
	if err != nil {
		return "", apierrors.NewServiceUnavailable(err.Error())
	}
	var data *bootstrapData
	var dataRev int64
	if len(resp.Kvs) > 0 {
		d, err := openBootstrap(ownSecret, resp.Kvs[0].Value)
		if err != nil {
			return "", err
		}
		data, dataRev = &d, resp.Kvs[0].ModRevision
	}
	var token, file string
	var ops []clientv3.Op
	sealWith := ownSecret
	switch role {
	case apiserver.JoinRoleAgent:
		token, file = pki.FormatToken(j.caPEM, pki.AgentTokenUser, secret), j.layout.AgentTokenFile()
		rec.Agent = h
		if data != nil {
			data.AgentToken = token
		}
	case apiserver.JoinRoleServer:
		token, file = pki.FormatToken(j.caPEM, pki.ServerTokenUser, secret), j.layout.TokenFile()
		rec.Server = h
		sealWith = secret
		if data != nil {
			data.Token = token
			ops = append(ops, clientv3.OpDelete(oldKey))
		}
	default:
		return "", apierrors.NewBadRequest("unknown token role")
	}
	if data != nil {
		sealed, err := sealBootstrap(sealWith, *data)
		if err != nil {
			return "", fmt.Errorf("seal bootstrap data: %w", err)
		}
		ops = append(ops, clientv3.OpPut(bootstrapKey(sealWith), string(sealed)))
	}
	recJSON, _ := json.Marshal(rec)
	ops = append(ops, clientv3.OpPut(joinTokensKey, string(recJSON)))
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(joinTokensKey), "=", rev)}
	if data != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(oldKey), "=", dataRev))
	} else {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(oldKey), "=", 0))
	}
	txn, err := j.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("store the new token: %v", err))
	}
	if !txn.Succeeded {
		return "", apierrors.NewConflict(tokensResource(), role.String(), errors.New("the tokens changed meanwhile (another rotation?); try again"))
	}
	j.remember(rec)
	if err := pki.WriteToken(file, token); err != nil {
		return "", fmt.Errorf("the new token works, but this server could not keep it in %s: %w", file, err)
	}
	j.log.Info("rotated a join token; the old one joins no one any more", "token", role.String(), "file", file)
	return token, nil
}

func tokensResource() schema.GroupResource {
	return schema.GroupResource{Group: "skiff", Resource: "tokens"}
}

// adoptFlagToken makes --token the first server's server token: a new
// cluster's (no etcd data yet) token is the one the user chose, as k3s.
func adoptFlagToken(layout config.Layout, flagToken string, caPEM []byte) error {
	if flagToken == "" {
		return nil
	}
	_, secret, err := pki.ParseToken(flagToken)
	if err != nil {
		return fmt.Errorf("--token: %w", err)
	}
	if cur, err := pki.ReadTokenSecret(layout.TokenFile()); err == nil && cur == secret {
		return nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(layout.TokenFile()), 0o700); err != nil {
		return err
	}
	return pki.WriteToken(layout.TokenFile(), pki.FormatToken(caPEM, pki.ServerTokenUser, strings.TrimSpace(secret)))
}
