package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"skiff/internal/config"
	"skiff/internal/encryption"
	"skiff/internal/pki"
)

// Encryption at rest. The cluster's EncryptionConfiguration (skiff's own,
// unless the server is given --encryption-provider-config) lives in the
// sealed bootstrap data, so every server, and every server that joins
// later, has the same keys. Each server also keeps a copy in its data dir
// (Layout.EncryptionConfigFile, mode 0600): the first server makes the
// configuration there before etcd is up, and a joining server writes the
// one it was given.
//
// Once etcd is up and before the API serves, a server takes the
// configuration from the bootstrap data (storing its own there if there is
// none yet), checks that it reads every stored object — a configuration
// that cannot stops the server and nothing is rewritten — and rewrites the
// objects not written with its write keys (those stored in plain text
// before encryption was on, once). It then watches the bootstrap data and
// puts a new configuration in force as soon as it is stored, recording
// under encryptionServersPrefix which configuration it uses.
//
// A key rotation (RotateEncryptionKeys) relies on those records: it stores
// a configuration that knows the new key but still writes with the old
// one, waits until every etcd member's server uses it, stores the one that
// writes with the new key, waits again, and only then rewrites every
// object. So no server ever meets a value written with a key it does not
// know, and none stops serving.

// encryptionServersPrefix holds, per etcd member, the encryption
// configuration its server uses.
const encryptionServersPrefix = "/skiff/encryption/servers/"

// encryptionRecord is what a server records of its configuration.
type encryptionRecord struct {
	// Hash names the configuration (encryption.Config.Hash).
	Hash string `json:"hash"`
	// Custom: the configuration comes from --encryption-provider-config,
	// not from the bootstrap data.
	Custom bool                     `json:"custom,omitempty"`
	Write  []encryption.ResourceKey `json:"write"`
	Time   time.Time                `json:"time"`
}

// loadEncryption reads this server's encryption configuration before etcd
// is up: the user's file, or skiff's copy in the data dir, which it makes
// (a new key) on the first start.
func (s *Server) loadEncryption(layout config.Layout) (*encryption.Keeper, error) {
	if f := s.cfg.EncryptionProviderConfig; f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--encryption-provider-config: %w", err)
		}
		c, err := encryption.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("--encryption-provider-config %s: %w", f, err)
		}
		return encryption.NewKeeper(c), nil
	}
	file := layout.EncryptionConfigFile()
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		if data, err = encryption.Generate(time.Now()); err != nil {
			return nil, err
		}
		if err := pki.WriteFileAtomic(file, data, 0o600); err != nil {
			return nil, fmt.Errorf("keep the encryption configuration: %w", err)
		}
		s.log.Info("made a key to encrypt Secrets at rest", "file", file)
	} else if err != nil {
		return nil, fmt.Errorf("encryption configuration: %w", err)
	}
	c, err := encryption.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return encryption.NewKeeper(c), nil
}

// syncEncryption runs once etcd is up, before the API serves: it takes
// the cluster's configuration from the bootstrap data (or stores this
// server's there), checks it against the stored objects and rewrites the
// stale ones. It returns the bootstrap data's revision to watch from.
//
// peersOnClusterCA says whether this member's peers still use the cluster
// CA; the bootstrap data it may store then carries no etcd CA.
func (s *Server) syncEncryption(ctx context.Context, cli *clientv3.Client, layout config.Layout, keeper *encryption.Keeper, peersOnClusterCA bool) (int64, error) {
	lg := s.log.With("component", "encryption")
	var rev int64
	if s.cfg.EncryptionProviderConfig == "" {
		var err error
		if rev, err = s.adoptClusterEncryption(ctx, cli, layout, keeper, peersOnClusterCA); err != nil {
			return 0, err
		}
	}
	c := keeper.Config()
	n, err := encryption.CheckAndRewrite(ctx, cli, c)
	if err != nil {
		return 0, fmt.Errorf("encryption at rest: %w", err)
	}
	if n > 0 {
		lg.Info("rewrote stored objects with the current encryption keys", "objects", n)
	}
	if err := s.recordEncryption(ctx, cli, c); err != nil {
		return 0, err
	}
	lg.Info("encryption at rest", "write", c.WriteKeys(), "custom", s.cfg.EncryptionProviderConfig != "")
	return rev, nil
}

// adoptClusterEncryption makes the bootstrap data's configuration this
// server's, or stores this server's there when it has none (a new
// cluster, or one made before encryption at rest). What it stores is the
// whole of this server's bootstrap data (bootstrapDataToStore), since a
// server joining at that moment takes what it finds.
func (s *Server) adoptClusterEncryption(ctx context.Context, cli *clientv3.Client, layout config.Layout, keeper *encryption.Keeper, peersOnClusterCA bool) (int64, error) {
	local, secret, err := bootstrapDataToStore(layout, peersOnClusterCA)
	if err != nil {
		return 0, fmt.Errorf("encryption configuration: %w", err)
	}
	for {
		d, rev, found, err := readBootstrap(ctx, cli, secret)
		if err != nil {
			return 0, fmt.Errorf("encryption configuration: %w", err)
		}
		if found && len(d.EncryptionConfig) > 0 {
			if err := s.useEncryption(layout, keeper, d.EncryptionConfig); err != nil {
				return 0, err
			}
			return rev, nil
		}
		if !found {
			d = local
		}
		d.EncryptionConfig = keeper.Config().Bytes()
		err = writeBootstrap(ctx, cli, secret, d, rev)
		if errors.Is(err, errBootstrapChanged) {
			continue // another server stored first: take its configuration
		}
		if err != nil {
			return 0, err
		}
	}
}

// useEncryption puts the configuration data in force, keeping a copy in
// the data dir.
func (s *Server) useEncryption(layout config.Layout, keeper *encryption.Keeper, data []byte) error {
	c, err := encryption.Parse(data)
	if err != nil {
		return fmt.Errorf("the cluster's encryption configuration: %w", err)
	}
	if bytes.Equal(c.Bytes(), keeper.Config().Bytes()) {
		return nil
	}
	if err := pki.WriteFileAtomic(layout.EncryptionConfigFile(), data, 0o600); err != nil {
		return fmt.Errorf("keep the encryption configuration: %w", err)
	}
	keeper.Set(c)
	s.log.Info("encryption configuration changed", "component", "encryption", "write", c.WriteKeys())
	return nil
}

// recordEncryption records which configuration this server uses.
func (s *Server) recordEncryption(ctx context.Context, cli *clientv3.Client, c *encryption.Config) error {
	rec, err := json.Marshal(encryptionRecord{Hash: c.Hash(), Custom: s.cfg.EncryptionProviderConfig != "", Write: c.WriteKeys(), Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	if _, err := cli.Put(ctx, encryptionServersPrefix+s.EtcdMemberName(), string(rec)); err != nil {
		return fmt.Errorf("record the encryption configuration: %w", err)
	}
	return nil
}

// watchEncryption puts each configuration stored in the bootstrap data
// after revision rev in force, until ctx is done. The returned channel is
// closed when it has stopped.
func (s *Server) watchEncryption(ctx context.Context, cli *clientv3.Client, layout config.Layout, keeper *encryption.Keeper, rev int64) <-chan struct{} {
	done := make(chan struct{})
	if s.cfg.EncryptionProviderConfig != "" {
		close(done)
		return done
	}
	lg := s.log.With("component", "encryption")
	go func() {
		defer close(done)
		_, secret, err := localBootstrapData(layout)
		if err != nil {
			lg.Error("encryption keys are not watched: a rotation needs this server restarted", "err", err)
			return
		}
		key := bootstrapKey(secret)
		for ctx.Err() == nil {
			wch := cli.Watch(clientv3.WithRequireLeader(ctx), key, clientv3.WithRev(rev+1))
			for resp := range wch {
				if err := resp.Err(); err != nil {
					lg.Warn("watch of the encryption configuration ended; reading it again", "err", err)
					// Changes may be compacted away: take the data as it is now.
					if r, err := s.resyncEncryption(ctx, cli, layout, keeper, secret); err != nil {
						lg.Error("cannot read the cluster's encryption configuration", "err", err)
					} else {
						rev = r
					}
					break
				}
				for _, ev := range resp.Events {
					rev = ev.Kv.ModRevision
					if ev.Type != clientv3.EventTypePut {
						continue
					}
					if err := s.takeEncryption(ctx, cli, layout, keeper, secret, ev.Kv.Value); err != nil {
						lg.Error("cannot take the cluster's new encryption configuration", "err", err)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return done
}

func (s *Server) takeEncryption(ctx context.Context, cli *clientv3.Client, layout config.Layout, keeper *encryption.Keeper, secret string, sealed []byte) error {
	d, err := openBootstrap(secret, sealed)
	if err != nil {
		return err
	}
	if len(d.EncryptionConfig) == 0 {
		return nil
	}
	if err := s.useEncryption(layout, keeper, d.EncryptionConfig); err != nil {
		return err
	}
	return s.recordEncryption(ctx, cli, keeper.Config())
}

// resyncEncryption takes the bootstrap data's configuration as it is now
// and returns the revision read.
func (s *Server) resyncEncryption(ctx context.Context, cli *clientv3.Client, layout config.Layout, keeper *encryption.Keeper, secret string) (int64, error) {
	resp, err := cli.Get(ctx, bootstrapKey(secret))
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) > 0 {
		if err := s.takeEncryption(ctx, cli, layout, keeper, secret, resp.Kvs[0].Value); err != nil {
			return 0, err
		}
	}
	return resp.Header.Revision, nil
}
