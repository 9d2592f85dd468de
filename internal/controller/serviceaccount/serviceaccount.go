// Package serviceaccount makes sure every active namespace has a "default"
// ServiceAccount, as Kubernetes' service-account controller does: it is
// created with the namespace and again whenever it is deleted.
package serviceaccount

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/controller"
)

// Name is the controller's name in logs and the manager.
const Name = "serviceaccount-controller"

// DefaultAccount is the account every namespace gets.
const DefaultAccount = "default"

const workers = 2

// Controller is the service-account controller.
type Controller struct {
	client     kubernetes.Interface
	namespaces corelisters.NamespaceLister
	accounts   corelisters.ServiceAccountLister
	synced     []cache.InformerSynced
	queue      controller.Queue
	log        *slog.Logger
}

// New builds the controller from cctx.
func New(cctx *controller.Context) (*Controller, error) {
	ns := cctx.Informers.Core().V1().Namespaces()
	sas := cctx.Informers.Core().V1().ServiceAccounts()
	c := &Controller{
		client:     cctx.Client,
		namespaces: ns.Lister(),
		accounts:   sas.Lister(),
		synced:     []cache.InformerSynced{ns.Informer().HasSynced, sas.Informer().HasSynced},
		queue:      controller.NewQueue(Name),
		log:        cctx.ControllerLogger(Name),
	}
	enqueueNamespace := func(obj any) {
		if n, ok := controller.ObjectOf[*corev1.Namespace](obj); ok {
			c.queue.Add(n.Name)
		}
	}
	if _, err := ns.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueNamespace,
		UpdateFunc: func(_, cur any) { enqueueNamespace(cur) },
	}); err != nil {
		return nil, fmt.Errorf("%s: namespace handler: %w", Name, err)
	}
	if _, err := sas.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if sa, ok := controller.ObjectOf[*corev1.ServiceAccount](obj); ok && sa.Name == DefaultAccount {
				c.queue.Add(sa.Namespace)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("%s: service account handler: %w", Name, err)
	}
	return c, nil
}

// Run runs the controller until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	controller.Run(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

// sync makes sure the namespace has its default account.
func (c *Controller) sync(ctx context.Context, namespace string) error {
	ns, err := c.namespaces.Get(namespace)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Status.Phase == corev1.NamespaceTerminating || ns.DeletionTimestamp != nil {
		return nil
	}
	if _, err := c.accounts.ServiceAccounts(namespace).Get(DefaultAccount); err == nil {
		return nil
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: DefaultAccount}}
	_, err = c.client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{})
	switch {
	case err == nil:
		c.log.Debug("created the default service account", "namespace", namespace)
		return nil
	case apierrors.IsAlreadyExists(err), apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil
	}
	return err
}
