// Package satoken fills Secrets of type kubernetes.io/service-account-token
// with a legacy token for their ServiceAccount, the cluster CA and the
// namespace, as Kubernetes' tokens controller does, and deletes such a
// Secret once its ServiceAccount is gone (or was replaced: another UID).
package satoken

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/auth/serviceaccount"
	"skiff/internal/controller"
)

// Name is the controller's name in logs and the manager.
const Name = "serviceaccount-token-controller"

const workers = 2

// Config is what the controller needs.
type Config struct {
	// Signer issues the legacy tokens.
	Signer *serviceaccount.Signer
	// RootCA is the PEM bundle put in ca.crt.
	RootCA []byte
}

// Controller is the tokens controller.
type Controller struct {
	cfg      Config
	client   kubernetes.Interface
	secrets  corelisters.SecretLister
	accounts corelisters.ServiceAccountLister
	synced   []cache.InformerSynced
	queue    controller.Queue
	log      *slog.Logger
}

// New builds the controller from cctx and cfg.
func New(cctx *controller.Context, cfg Config) (*Controller, error) {
	if cfg.Signer == nil {
		return nil, errors.New(Name + ": a signer is required")
	}
	secrets := cctx.Informers.Core().V1().Secrets()
	sas := cctx.Informers.Core().V1().ServiceAccounts()
	c := &Controller{
		cfg:      cfg,
		client:   cctx.Client,
		secrets:  secrets.Lister(),
		accounts: sas.Lister(),
		synced:   []cache.InformerSynced{secrets.Informer().HasSynced, sas.Informer().HasSynced},
		queue:    controller.NewQueue(Name),
		log:      cctx.ControllerLogger(Name),
	}
	enqueueSecret := func(obj any) {
		if s, ok := controller.ObjectOf[*corev1.Secret](obj); ok && s.Type == corev1.SecretTypeServiceAccountToken {
			controller.Enqueue(c.queue, obj)
		}
	}
	if _, err := secrets.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueSecret,
		UpdateFunc: func(_, cur any) { enqueueSecret(cur) },
	}); err != nil {
		return nil, fmt.Errorf("%s: secret handler: %w", Name, err)
	}
	// An account's change or deletion concerns its token secrets.
	enqueueTokens := func(obj any) {
		sa, ok := controller.ObjectOf[*corev1.ServiceAccount](obj)
		if !ok {
			return
		}
		list, _ := c.secrets.Secrets(sa.Namespace).List(labels.Everything())
		for _, s := range list {
			if s.Type == corev1.SecretTypeServiceAccountToken && s.Annotations[corev1.ServiceAccountNameKey] == sa.Name {
				c.queue.Add(s.Namespace + "/" + s.Name)
			}
		}
	}
	if _, err := sas.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueTokens,
		UpdateFunc: func(_, cur any) { enqueueTokens(cur) },
		DeleteFunc: enqueueTokens,
	}); err != nil {
		return nil, fmt.Errorf("%s: service account handler: %w", Name, err)
	}
	return c, nil
}

// Run runs the controller until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	controller.Run(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

// sync brings one token secret up to date, or deletes it.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	secret, err := c.secrets.Secrets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	saName := secret.Annotations[corev1.ServiceAccountNameKey]
	if secret.Type != corev1.SecretTypeServiceAccountToken || saName == "" || secret.DeletionTimestamp != nil {
		return nil
	}
	sa, err := c.account(ctx, ns, saName)
	if err != nil {
		return err
	}
	wantUID := secret.Annotations[corev1.ServiceAccountUIDKey]
	if sa == nil || (wantUID != "" && wantUID != string(sa.UID)) {
		uid := secret.UID
		err := c.client.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err == nil {
			c.log.Info("deleted the token secret of a service account that is gone", "secret", key, "serviceAccount", saName)
		}
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	needToken := len(secret.Data[corev1.ServiceAccountTokenKey]) == 0
	needCA := len(c.cfg.RootCA) > 0 && !bytes.Equal(secret.Data[corev1.ServiceAccountRootCAKey], c.cfg.RootCA)
	needNS := string(secret.Data[corev1.ServiceAccountNamespaceKey]) != ns
	needUID := wantUID == ""
	if !needToken && !needCA && !needNS && !needUID {
		return nil
	}
	updated := secret.DeepCopy()
	if updated.Data == nil {
		updated.Data = map[string][]byte{}
	}
	if updated.Annotations == nil {
		updated.Annotations = map[string]string{}
	}
	updated.Annotations[corev1.ServiceAccountUIDKey] = string(sa.UID)
	if needToken {
		tok, err := c.cfg.Signer.IssueLegacy(sa, updated)
		if err != nil {
			return err
		}
		updated.Data[corev1.ServiceAccountTokenKey] = []byte(tok)
	}
	if needCA {
		updated.Data[corev1.ServiceAccountRootCAKey] = c.cfg.RootCA
	}
	updated.Data[corev1.ServiceAccountNamespaceKey] = []byte(ns)
	_, err = c.client.CoreV1().Secrets(ns).Update(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// account returns the service account, reading through to the API when
// the cache does not have it (it may be new); nil if it does not exist.
func (c *Controller) account(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	sa, err := c.accounts.ServiceAccounts(ns).Get(name)
	if err == nil {
		return sa, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	sa, err = c.client.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return sa, err
}
