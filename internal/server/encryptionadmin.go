package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"skiff/internal/config"
	"skiff/internal/encryption"
	"skiff/internal/pki"
)

// The secrets-encrypt commands run on a server's machine, as root: they
// read the join token from the data dir (it opens the bootstrap data) and
// talk to the server's etcd with its local client, as the running servers
// do.

// errNoClusterEncryption: the bootstrap data holds no encryption configuration.
var errNoClusterEncryption = errors.New("the cluster has no encryption configuration in its bootstrap data: either no server of this version has started, or the servers use their own --encryption-provider-config (pass it to status too)")

// EncryptionKeysWait bounds how long a rotation waits for every server to
// use a new configuration.
const EncryptionKeysWait = 2 * time.Minute

func clusterSecret(dataDir string) (string, error) {
	token, err := os.ReadFile(config.Layout{DataDir: dataDir}.TokenFile())
	if err != nil {
		return "", fmt.Errorf("read the server's token (run this as root on a server, with its --data-dir): %w", err)
	}
	_, secret, err := pki.ParseToken(string(token))
	return secret, err
}

// serverRecords returns each server's encryption record by etcd member name.
func serverRecords(ctx context.Context, cli *clientv3.Client) (map[string]encryptionRecord, error) {
	resp, err := cli.Get(ctx, encryptionServersPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read the servers' encryption records: %w", err)
	}
	out := map[string]encryptionRecord{}
	for _, kv := range resp.Kvs {
		var r encryptionRecord
		if err := json.Unmarshal(kv.Value, &r); err == nil {
			out[strings.TrimPrefix(string(kv.Key), encryptionServersPrefix)] = r
		}
	}
	return out, nil
}

// EncryptionStatus writes what encrypts objects at rest: the cluster's
// configuration, which one each server uses, and how many objects of each
// encrypted resource are stored under which key. customConfig is a
// server's --encryption-provider-config, if it has one.
func EncryptionStatus(ctx context.Context, cli *clientv3.Client, dataDir, customConfig string, w io.Writer) error {
	var c *encryption.Config
	if customConfig != "" {
		data, err := os.ReadFile(customConfig)
		if err != nil {
			return err
		}
		if c, err = encryption.Parse(data); err != nil {
			return fmt.Errorf("%s: %w", customConfig, err)
		}
	} else {
		secret, err := clusterSecret(dataDir)
		if err != nil {
			return err
		}
		d, _, found, err := readBootstrap(ctx, cli, secret)
		if err != nil {
			return err
		}
		if !found || len(d.EncryptionConfig) == 0 {
			return errNoClusterEncryption
		}
		if c, err = encryption.Parse(d.EncryptionConfig); err != nil {
			return err
		}
	}
	recs, err := serverRecords(ctx, cli)
	if err != nil {
		return err
	}
	counts, err := encryption.Count(ctx, cli, c)
	if err != nil {
		return err
	}
	on := false
	for _, rk := range c.WriteKeys() {
		on = on || rk.Write != encryption.ProviderIdentity
	}
	state := "Enabled"
	if !on {
		state = "Disabled"
	}
	fmt.Fprintf(w, "Encryption Status: %s\nConfiguration: %s\n\n", state, c.Hash())
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tWRITE KEY\tSTORED UNDER\tCOUNT")
	for _, rk := range c.WriteKeys() {
		keys := make([]string, 0, len(counts[rk.Resource]))
		for k := range counts[rk.Resource] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t0\n", rk.Resource, rk.Write)
		}
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", rk.Resource, rk.Write, k, counts[rk.Resource][k])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tCONFIGURATION\tCURRENT\tWRITE KEYS")
	names := make([]string, 0, len(recs))
	for n := range recs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := recs[n]
		var writes []string
		for _, rk := range r.Write {
			writes = append(writes, rk.Resource+"="+rk.Write)
		}
		current := "yes"
		if r.Custom {
			current = "own file"
		} else if r.Hash != c.Hash() {
			current = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n, r.Hash, current, strings.Join(writes, ","))
	}
	return tw.Flush()
}

// RotateEncryptionKeys makes a new key the write key of every encrypted
// resource and rewrites every object with it, while the servers serve.
// Old keys stay in the configuration, so anything written with them (a
// snapshot restored later) is still read. Progress goes to w.
func RotateEncryptionKeys(ctx context.Context, cli *clientv3.Client, dataDir string, w io.Writer) error {
	secret, err := clusterSecret(dataDir)
	if err != nil {
		return err
	}
	recs, err := serverRecords(ctx, cli)
	if err != nil {
		return err
	}
	for n, r := range recs {
		if r.Custom {
			return fmt.Errorf("server %s uses its own --encryption-provider-config: rotate its keys by editing that file on every server (add the new key, restart, move it first, restart), as for a Kubernetes API server", n)
		}
	}
	d, rev, found, err := readBootstrap(ctx, cli, secret)
	if err != nil {
		return err
	}
	if !found || len(d.EncryptionConfig) == 0 {
		return errNoClusterEncryption
	}
	cur, err := encryption.Parse(d.EncryptionConfig)
	if err != nil {
		return err
	}
	staged, active, name, err := cur.Rotation(time.Now())
	if err != nil {
		return err
	}
	steps := []struct {
		what string
		data []byte
	}{
		{"every server knows the new key " + name, staged},
		{"every server writes with the new key " + name, active},
	}
	for _, step := range steps {
		c, err := encryption.Parse(step.data)
		if err != nil {
			return err
		}
		d.EncryptionConfig = step.data
		if err := writeBootstrap(ctx, cli, secret, d, rev); err != nil {
			if errors.Is(err, errBootstrapChanged) {
				return fmt.Errorf("%w (another rotation?): run rotate-keys again", err)
			}
			return err
		}
		if _, rev, _, err = readBootstrap(ctx, cli, secret); err != nil {
			return err
		}
		if err := waitServers(ctx, cli, c.Hash()); err != nil {
			return fmt.Errorf("%s: %w. The configuration is stored: servers that start take it; run rotate-keys again once every server runs", step.what, err)
		}
		fmt.Fprintf(w, "%s\n", step.what)
	}
	c, err := encryption.Parse(active)
	if err != nil {
		return err
	}
	n, err := encryption.CheckAndRewrite(ctx, cli, c)
	if err != nil {
		return fmt.Errorf("rewrite the stored objects: %w", err)
	}
	fmt.Fprintf(w, "rewrote %d objects with key %s\n", n, name)
	return nil
}

// waitServers waits until the server of every voting etcd member records
// the configuration named hash.
func waitServers(ctx context.Context, cli *clientv3.Client, hash string) error {
	ctx, cancel := context.WithTimeout(ctx, EncryptionKeysWait)
	defer cancel()
	for {
		ms, err := cli.MemberList(ctx)
		if err != nil {
			return fmt.Errorf("list etcd members: %w", err)
		}
		recs, err := serverRecords(ctx, cli)
		if err != nil {
			return err
		}
		var behind []string
		for _, m := range ms.Members {
			if m.IsLearner {
				continue
			}
			if r, ok := recs[m.Name]; !ok || r.Hash != hash {
				name := m.Name
				if name == "" {
					name = fmt.Sprintf("%x (not started)", m.ID)
				}
				behind = append(behind, name)
			}
		}
		if len(behind) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("servers %s have not taken the new configuration", strings.Join(behind, ", "))
		case <-time.After(500 * time.Millisecond):
		}
	}
}
