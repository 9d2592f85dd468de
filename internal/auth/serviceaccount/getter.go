package serviceaccount

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
)

// ListerGetter looks objects up in informer caches and, for an object the
// cache does not hold yet (a pod created a moment ago), asks the API
// through Client when it is set. Every lister must be set.
type ListerGetter struct {
	ServiceAccounts corev1listers.ServiceAccountLister
	Pods            corev1listers.PodLister
	Secrets         corev1listers.SecretLister
	Nodes           corev1listers.NodeLister
	Client          kubernetes.Interface
}

// ServiceAccount implements Getter.
func (g ListerGetter) ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	sa, err := g.ServiceAccounts.ServiceAccounts(namespace).Get(name)
	if apierrors.IsNotFound(err) && g.Client != nil {
		return g.Client.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
	}
	return sa, err
}

// Pod implements Getter.
func (g ListerGetter) Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	p, err := g.Pods.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) && g.Client != nil {
		return g.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	}
	return p, err
}

// Secret implements Getter.
func (g ListerGetter) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s, err := g.Secrets.Secrets(namespace).Get(name)
	if apierrors.IsNotFound(err) && g.Client != nil {
		return g.Client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	}
	return s, err
}

// Node implements Getter.
func (g ListerGetter) Node(ctx context.Context, name string) (*corev1.Node, error) {
	n, err := g.Nodes.Get(name)
	if apierrors.IsNotFound(err) && g.Client != nil {
		return g.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	}
	return n, err
}
