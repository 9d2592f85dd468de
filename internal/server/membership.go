package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"skiff/internal/config"
	"skiff/internal/etcd"
	"skiff/internal/pki"
)

// startMembership does this server's part in a cluster of servers, once it
// serves: it corrects its advertised peer URL, stores the sealed bootstrap
// data that joining servers fetch, and warns about an even member count.
// A server that takes no peers only corrects its peer URL (an upgrade made
// its peer port HTTPS). The returned channel is closed when it is done or
// ctx ends.
func (s *Server) startMembership(ctx context.Context, db *etcd.Etcd, layout config.Layout, peersOnClusterCA bool) <-chan struct{} {
	done := make(chan struct{})
	type step struct {
		what string
		do   func(context.Context) error
	}
	steps := []step{{"update the advertised peer URL", db.EnsurePeerURL}}
	if s.clustered(layout) {
		steps = append(steps,
			step{"store the bootstrap data for joining servers", func(ctx context.Context) error {
				return s.storeBootstrap(ctx, db, layout, peersOnClusterCA)
			}},
			step{"check the member count", func(ctx context.Context) error { return s.warnEvenMembers(ctx, db) }})
	}
	lg := s.log.With("component", "etcd")
	go func() {
		defer close(done)
		// Each step needs quorum, which may take a while after a restart;
		// retry until it is there.
		for _, step := range steps {
			_ = wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
				stepCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := step.do(stepCtx); err != nil {
					lg.Warn("cannot "+step.what+" yet; retrying", "err", err)
					return false, nil
				}
				return true, nil
			})
		}
	}()
	return done
}

// storeBootstrap stores the cluster's secrets for joining servers. The etcd
// CA is left out while this member authenticates peers with the cluster CA:
// a server joining with it would be refused by the members.
func (s *Server) storeBootstrap(ctx context.Context, db *etcd.Etcd, layout config.Layout, peersOnClusterCA bool) error {
	d, secret, err := bootstrapDataToStore(layout, peersOnClusterCA)
	if err != nil {
		return err
	}
	err = storeBootstrap(ctx, db.Client(), secret, d)
	if errors.Is(err, errStaleServerToken) {
		s.log.Warn("not storing bootstrap data: this server's server token was rotated on another server; restart it with --token set to the new one", "component", "etcd")
		return nil
	}
	return err
}

// bootstrapDataToStore is localBootstrapData with the etcd CA, unless
// this member still authenticates peers with the cluster CA: a server that
// finds no etcd CA in the data joins with the cluster CA, as the members
// then expect.
func bootstrapDataToStore(layout config.Layout, peersOnClusterCA bool) (bootstrapData, string, error) {
	d, secret, err := localBootstrapData(layout)
	if err != nil || peersOnClusterCA {
		return d, secret, err
	}
	etcdDir := layout.EtcdTLSDir()
	if d.EtcdCACert, err = os.ReadFile(filepath.Join(etcdDir, "ca.crt")); err != nil {
		return d, secret, err
	}
	if d.EtcdCAKey, err = os.ReadFile(filepath.Join(etcdDir, "ca.key")); err != nil {
		return d, secret, err
	}
	return d, secret, nil
}

// localBootstrapData is the bootstrap data from this server's data dir,
// and the token secret that seals it.
func localBootstrapData(layout config.Layout) (bootstrapData, string, error) {
	dir := layout.TLSDir()
	caCert, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return bootstrapData{}, "", err
	}
	caKey, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		return bootstrapData{}, "", err
	}
	token, err := os.ReadFile(layout.TokenFile())
	if err != nil {
		return bootstrapData{}, "", err
	}
	_, secret, err := pki.ParseToken(string(token))
	if err != nil {
		return bootstrapData{}, "", fmt.Errorf("token file: %w", err)
	}
	saKey, err := os.ReadFile(layout.ServiceAccountKeyFile())
	if err != nil {
		return bootstrapData{}, "", err
	}
	agentToken, err := os.ReadFile(layout.AgentTokenFile())
	if err != nil {
		return bootstrapData{}, "", err
	}
	return bootstrapData{CACert: caCert, CAKey: caKey, Token: strings.TrimSpace(string(token)),
		AgentToken: strings.TrimSpace(string(agentToken)), ServiceAccountKey: saKey}, secret, nil
}

// warnEvenMembers logs a warning when etcd has an even number of voting
// members: four tolerate one failure, as three do, with more to go wrong.
func (s *Server) warnEvenMembers(ctx context.Context, db *etcd.Etcd) error {
	ms, err := db.Members(ctx)
	if err != nil {
		return err
	}
	if n := etcd.Voters(ms); n%2 == 0 {
		s.log.Warn("etcd has an even number of voting members: it tolerates no more failed servers than one member fewer would; add or remove a server",
			"component", "etcd", "members", n, "tolerates", (n-1)/2)
	}
	return nil
}

// serverNodesPrefix records, per server's Node whose etcd member exists,
// the member's name (empty in records of older servers: the node name): a
// Node deleted while no server led is then still noticed by the next leader
// (its delete event is long gone).
const serverNodesPrefix = "/skiff/server-nodes/"

// memberOf is the etcd member name of a server's node: its annotation, or
// for a node of an older server, which named members after nodes, the node
// name.
func memberOf(n *corev1.Node) string {
	if m := n.Annotations[AnnotationEtcdMember]; m != "" {
		return m
	}
	return n.Name
}

// removeDeletedServers removes the etcd member of a server whose Node is
// deleted (`kubectl delete node s3`), as k3s does: the way to take a dead
// server out of the cluster for good. It runs on the leader until ctx ends.
// A server's node names its member in an annotation; servers without a
// node (no agent) are never removed this way.
func (s *Server) removeDeletedServers(ctx context.Context, db *etcd.Etcd, client kubernetes.Interface) {
	lg := s.log.With("component", "etcd-members")
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "etcd-members"})
	defer queue.ShutDown()
	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes().Informer()
	if _, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			// Only servers' nodes can have a member.
			if n, ok := obj.(*corev1.Node); ok && n.Labels[config.LabelControlPlane] != "" {
				queue.Add(n.Name)
			}
		},
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*corev1.Node)
			n, ok2 := cur.(*corev1.Node)
			if ok1 && ok2 && n.Labels[config.LabelControlPlane] != "" && memberOf(o) != memberOf(n) {
				queue.Add(n.Name)
			}
		},
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				queue.Add(n.Name)
			}
		},
	}); err != nil {
		lg.Error("watch nodes", "err", err)
		return
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.HasSynced) {
		return
	}
	// Servers whose node went while nobody led.
	if resp, err := db.Client().Get(ctx, serverNodesPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly()); err != nil {
		lg.Warn("list servers with nodes", "err", err)
	} else {
		for _, kv := range resp.Kvs {
			queue.Add(strings.TrimPrefix(string(kv.Key), serverNodesPrefix))
		}
	}
	go func() { <-ctx.Done(); queue.ShutDown() }()
	for {
		name, shutdown := queue.Get()
		if shutdown {
			return
		}
		err := s.syncServerNode(ctx, db, nodes.GetIndexer(), name)
		if err != nil && ctx.Err() == nil {
			lg.Warn("cannot sync the etcd member of a node; retrying", "node", name, "err", err)
			queue.AddRateLimited(name)
		} else {
			queue.Forget(name)
		}
		queue.Done(name)
	}
}

// syncServerNode records the member of the node name while the node has
// one, and removes the member (and the record) once the node is gone.
func (s *Server) syncServerNode(ctx context.Context, db *etcd.Etcd, nodes cache.Indexer, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	k := serverNodesPrefix + name
	if obj, exists, _ := nodes.GetByKey(name); exists {
		n, ok := obj.(*corev1.Node)
		if !ok {
			return nil
		}
		member := memberOf(n)
		ms, err := db.Members(ctx)
		if err != nil || !slices.ContainsFunc(ms, func(m etcd.Member) bool { return m.Name == member }) {
			return err
		}
		_, err = db.Client().Txn(ctx).If(clientv3.Compare(clientv3.Value(k), "=", member)).Else(clientv3.OpPut(k, member)).Commit()
		return err
	}
	resp, err := db.Client().Get(ctx, k)
	if err != nil {
		return err
	}
	member := name
	if len(resp.Kvs) > 0 && len(resp.Kvs[0].Value) > 0 {
		member = string(resp.Kvs[0].Value)
	}
	if member == s.EtcdMemberName() {
		s.log.Warn("this server's own node was deleted; its etcd member stays. To remove this server, stop it and delete its node from another server",
			"component", "etcd-members", "node", name, "member", member)
	} else {
		removed, err := db.RemoveMember(ctx, member)
		if err != nil {
			return err
		}
		if removed {
			if err := s.warnEvenMembers(ctx, db); err != nil {
				return err
			}
		}
	}
	_, err = db.Client().Delete(ctx, k)
	return err
}
