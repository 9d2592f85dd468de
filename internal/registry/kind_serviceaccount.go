package registry

import (
	"context"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// serviceAccountStrategy is core/v1 serviceaccounts, with the token
// subresource (TokenRequest) when the cluster issues tokens.
type serviceAccountStrategy struct {
	basics
	tokens TokenIssuer
}

// TokenIssuer issues a service account's tokens (TokenRequest).
type TokenIssuer interface {
	IssueToken(ctx context.Context, sa *corev1.ServiceAccount, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error)
}

func (s serviceAccountStrategy) Info() *Info {
	info := &Info{
		Group: "", Version: "v1", Resource: "serviceaccounts", Kind: "ServiceAccount", SingularName: "serviceaccount", Namespaced: true,
		ShortNames: []string{"sa"},
	}
	if s.tokens != nil {
		info.Subresources = []Subresource{{Name: "token", Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest", Verbs: []string{"create"}}}
	}
	return info
}

// Action serves serviceaccounts/<name>/token: a token for the account.
func (s serviceAccountStrategy) Action(sub string) (*Action, bool) {
	if sub != "token" || s.tokens == nil {
		return nil, false
	}
	return &Action{
		Verb:     "create",
		NewBody:  func() runtime.Object { return &authenticationv1.TokenRequest{} },
		BodyKind: authenticationv1.SchemeGroupVersion.WithKind("TokenRequest"),
		Respond: func(ctx context.Context, body, cur runtime.Object) (runtime.Object, error) {
			return s.tokens.IssueToken(ctx, cur.(*corev1.ServiceAccount), body.(*authenticationv1.TokenRequest))
		},
	}, true
}

func (serviceAccountStrategy) New() runtime.Object     { return &corev1.ServiceAccount{} }
func (serviceAccountStrategy) NewList() runtime.Object { return &corev1.ServiceAccountList{} }

func (serviceAccountStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateServiceAccount(obj.(*corev1.ServiceAccount))
}

func (serviceAccountStrategy) TableColumns() []metav1.TableColumnDefinition {
	return serviceAccountColumns()
}
func (serviceAccountStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return serviceAccountCells(obj.(*corev1.ServiceAccount), now)
}
