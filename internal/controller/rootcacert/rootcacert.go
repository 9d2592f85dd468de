// Package rootcacert publishes the cluster CA in every namespace as the
// ConfigMap kube-root-ca.crt (key ca.crt), as Kubernetes' root CA
// publisher does, so the projected service-account volume can mount it.
// A changed or deleted copy is put back.
package rootcacert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/controller"
)

// Name is the controller's name in logs and the manager.
const Name = "root-ca-cert-publisher"

// ConfigMapName and DataKey are where pods find the CA.
const (
	ConfigMapName = "kube-root-ca.crt"
	DataKey       = "ca.crt"
)

const (
	workers               = 2
	descriptionAnnotation = "kubernetes.io/description"
	description           = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Config is what the controller needs.
type Config struct {
	// CA is the PEM bundle pods trust for the API server.
	CA []byte
}

// Controller is the root CA publisher.
type Controller struct {
	ca         string
	client     kubernetes.Interface
	namespaces corelisters.NamespaceLister
	configMaps corelisters.ConfigMapLister
	synced     []cache.InformerSynced
	queue      controller.Queue
	log        *slog.Logger
}

// New builds the controller from cctx and cfg.
func New(cctx *controller.Context, cfg Config) (*Controller, error) {
	if len(cfg.CA) == 0 {
		return nil, errors.New(Name + ": a CA bundle is required")
	}
	ns := cctx.Informers.Core().V1().Namespaces()
	cms := cctx.Informers.Core().V1().ConfigMaps()
	c := &Controller{
		ca:         string(cfg.CA),
		client:     cctx.Client,
		namespaces: ns.Lister(),
		configMaps: cms.Lister(),
		synced:     []cache.InformerSynced{ns.Informer().HasSynced, cms.Informer().HasSynced},
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
	enqueueConfigMap := func(obj any) {
		if cm, ok := controller.ObjectOf[*corev1.ConfigMap](obj); ok && cm.Name == ConfigMapName {
			c.queue.Add(cm.Namespace)
		}
	}
	if _, err := cms.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur any) { enqueueConfigMap(cur) },
		DeleteFunc: enqueueConfigMap,
	}); err != nil {
		return nil, fmt.Errorf("%s: config map handler: %w", Name, err)
	}
	return c, nil
}

// Run runs the controller until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	controller.Run(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

// sync makes the namespace's kube-root-ca.crt hold the CA.
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
	data := map[string]string{DataKey: c.ca}
	cm, err := c.configMaps.ConfigMaps(namespace).Get(ConfigMapName)
	if apierrors.IsNotFound(err) {
		_, err = c.client.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: ConfigMapName, Annotations: map[string]string{descriptionAnnotation: description}},
			Data:       data,
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if maps.Equal(cm.Data, data) && len(cm.BinaryData) == 0 && cm.Annotations[descriptionAnnotation] != "" {
		return nil
	}
	updated := cm.DeepCopy()
	updated.Data = data
	updated.BinaryData = nil
	if updated.Annotations == nil {
		updated.Annotations = map[string]string{}
	}
	updated.Annotations[descriptionAnnotation] = description
	_, err = c.client.CoreV1().ConfigMaps(namespace).Update(ctx, updated, metav1.UpdateOptions{})
	return err
}
