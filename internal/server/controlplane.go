package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"skiff/internal/controller/manager"
	"skiff/internal/etcd"
	"skiff/internal/leader"
)

// LeaderLeaseName is the kube-system Lease naming the control-plane leader.
const LeaderLeaseName = "skiff-control-plane"

// runControlPlane campaigns for leadership and, while this server leads,
// runs the scheduler and controllers. It returns when ctx is done.
//
// rc is the server's own (admin) client configuration, for the leader's
// housekeeping; ids, when set, gives the scheduler and the controllers
// identities of their own.
func (s *Server) runControlPlane(ctx context.Context, db *etcd.Etcd, rc *rest.Config, ids *componentIdentities, extra []manager.Entry) error {
	entries := controllerEntries(s.cfg)
	if !s.cfg.DisableControllerManager {
		entries = append(entries, extra...)
	}
	if len(entries) == 0 {
		return nil
	}
	identity := s.cfg.NodeName
	el, err := leader.New(leader.Config{
		Client:   db.Client(),
		Prefix:   "/skiff/leader/control-plane",
		Identity: identity,
		TTL:      s.cfg.LeaderElectTTL,
		Logger:   s.log,
	})
	if err != nil {
		return err
	}
	return el.Run(ctx, func(ctx context.Context) {
		// The lease publisher stops with the controllers, never after.
		pubCtx, stopPublishing := context.WithCancel(ctx)
		var published sync.WaitGroup
		defer published.Wait()
		defer stopPublishing()
		if client, err := kubernetes.NewForConfig(rc); err != nil {
			s.log.Error("leader lease not published: build client", "err", err)
		} else {
			published.Add(2)
			go func() { defer published.Done(); s.publishLeader(pubCtx, client, identity) }()
			go func() { defer published.Done(); s.removeDeletedServers(pubCtx, db, client) }()
		}
		mcfg := manager.Config{RESTConfig: rc, Logger: s.log.With("component", "controller-manager"), Controllers: entries}
		if ids != nil {
			managerRC, err := ids.manager()
			if err != nil {
				s.log.Error("controller manager credentials", "err", err)
				return
			}
			mcfg.RESTConfig, mcfg.IdentityFor = managerRC, ids.controller
		}
		if err := manager.Run(ctx, mcfg); err != nil {
			s.log.Error("controller manager failed", "err", err)
		}
	})
}

// publishLeader keeps kube-system/skiff-control-plane naming this server
// while it leads, so `kubectl get lease -n kube-system` shows the leader.
func (s *Server) publishLeader(ctx context.Context, client kubernetes.Interface, identity string) {
	ttl := int32(s.cfg.LeaderElectTTL / time.Second)
	leases := client.CoordinationV1().Leases("kube-system")
	tick := time.NewTicker(s.cfg.LeaderElectTTL / 3)
	defer tick.Stop()
	acquired := metav1.NewMicroTime(time.Now())
	for {
		now := metav1.NewMicroTime(time.Now())
		err := func() error {
			l, err := leases.Get(ctx, LeaderLeaseName, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				_, err = leases.Create(ctx, &coordinationv1.Lease{
					ObjectMeta: metav1.ObjectMeta{Name: LeaderLeaseName, Namespace: "kube-system"},
					Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(identity), LeaseDurationSeconds: ptr.To(ttl),
						AcquireTime: &acquired, RenewTime: &now},
				}, metav1.CreateOptions{})
				return err
			}
			if err != nil {
				return err
			}
			if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != identity {
				l.Spec.LeaseTransitions = ptr.To(ptr.Deref(l.Spec.LeaseTransitions, 0) + 1)
				l.Spec.AcquireTime = &acquired
			}
			l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = ptr.To(identity), ptr.To(ttl), &now
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
			return err
		}()
		if err != nil && ctx.Err() == nil {
			s.log.Debug("publish leader lease", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// loopbackConfig is the admin client configuration the in-process control
// loops use to reach this server's API.
func loopbackConfig(kubeconfig []byte) (*rest.Config, error) {
	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loopback client config: %w", err)
	}
	// In-process loops are trusted; the workqueues pace them. A client-side
	// limit this high only stops a runaway loop.
	rc.QPS, rc.Burst = 2000, 4000
	return rc, nil
}
