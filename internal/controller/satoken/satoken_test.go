package satoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"skiff/internal/auth/serviceaccount"
	"skiff/internal/controller"
)

const issuer = "https://kubernetes.default.svc.cluster.local"

func TestSync(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := serviceaccount.NewSigner(issuer, key)
	ca := []byte("CA")
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "builder", UID: "sa-uid"}}
	secret := func(saName, uid string, data map[string][]byte) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "tok", UID: "secret-uid",
			Annotations: map[string]string{corev1.ServiceAccountNameKey: saName}}, Type: corev1.SecretTypeServiceAccountToken, Data: data}
		if uid != "" {
			s.Annotations[corev1.ServiceAccountUIDKey] = uid
		}
		return s
	}
	full := map[string][]byte{corev1.ServiceAccountTokenKey: []byte("t"), corev1.ServiceAccountRootCAKey: ca, corev1.ServiceAccountNamespaceKey: []byte("app")}
	tests := []struct {
		name     string
		secret   *corev1.Secret
		accounts []runtime.Object
		want     string // "update", "delete" or ""
	}{
		{"new secret", secret("builder", "", nil), []runtime.Object{sa}, "update"},
		{"complete", secret("builder", "sa-uid", full), []runtime.Object{sa}, ""},
		{"CA changed", secret("builder", "sa-uid", map[string][]byte{corev1.ServiceAccountTokenKey: []byte("t"), corev1.ServiceAccountRootCAKey: []byte("old"), corev1.ServiceAccountNamespaceKey: []byte("app")}), []runtime.Object{sa}, "update"},
		{"account gone", secret("builder", "sa-uid", full), nil, "delete"},
		{"account replaced", secret("builder", "old-uid", full), []runtime.Object{sa}, "delete"},
		{"no account named", secret("", "", nil), []runtime.Object{sa}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(append(tt.accounts, tt.secret)...)
			f := informers.NewSharedInformerFactory(client, 0)
			c, err := New(&controller.Context{Client: client, Informers: f, Logger: slog.New(slog.DiscardHandler)}, Config{Signer: signer, RootCA: ca})
			if err != nil {
				t.Fatal(err)
			}
			_ = f.Core().V1().Secrets().Informer().GetIndexer().Add(tt.secret)
			for _, o := range tt.accounts {
				_ = f.Core().V1().ServiceAccounts().Informer().GetIndexer().Add(o)
			}
			client.ClearActions()
			if err := c.sync(context.Background(), "app/tok"); err != nil {
				t.Fatal(err)
			}
			var writes []string
			for _, a := range client.Actions() {
				if a.GetVerb() != "get" {
					writes = append(writes, a.GetVerb())
				}
			}
			if tt.want == "" && len(writes) != 0 || tt.want != "" && (len(writes) != 1 || writes[0] != tt.want) {
				t.Fatalf("writes %v, want %q", writes, tt.want)
			}
			if tt.want != "update" {
				return
			}
			got, _ := client.CoreV1().Secrets("app").Get(context.Background(), "tok", metav1.GetOptions{})
			if string(got.Data[corev1.ServiceAccountRootCAKey]) != "CA" || string(got.Data[corev1.ServiceAccountNamespaceKey]) != "app" || got.Annotations[corev1.ServiceAccountUIDKey] != "sa-uid" {
				t.Fatalf("secret %+v", got)
			}
			if len(tt.secret.Data[corev1.ServiceAccountTokenKey]) > 0 {
				if string(got.Data[corev1.ServiceAccountTokenKey]) != "t" {
					t.Fatal("an existing token was replaced")
				}
				return
			}
			// The new token authenticates as the account while the secret
			// holds it.
			a, _ := serviceaccount.NewAuthenticator(serviceaccount.AuthenticatorConfig{Issuers: []string{issuer}, Keys: []crypto.PublicKey{key.Public()}, Legacy: true,
				Getter: serviceaccount.ListerGetter{ServiceAccounts: f.Core().V1().ServiceAccounts().Lister(), Pods: f.Core().V1().Pods().Lister(),
					Secrets: f.Core().V1().Secrets().Lister(), Nodes: f.Core().V1().Nodes().Lister(), Client: client},
				Now: time.Now})
			_ = f.Core().V1().Secrets().Informer().GetIndexer().Update(got)
			u, ok, err := a.AuthenticateToken(context.Background(), string(got.Data[corev1.ServiceAccountTokenKey]))
			if err != nil || !ok || u.Name != "system:serviceaccount:app:builder" {
				t.Fatalf("token: %+v %v %v", u, ok, err)
			}
		})
	}
}
