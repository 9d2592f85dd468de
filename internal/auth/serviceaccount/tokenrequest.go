package serviceaccount

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TokenRequest limits, as upstream.
const (
	DefaultExpiration = time.Hour
	MinExpiration     = 10 * time.Minute
	maxExpiration     = (1 << 32) * time.Second
)

// TokenRequestOptions are the API server's settings for TokenRequest.
type TokenRequestOptions struct {
	// Audiences are the API server's, used when a request names none.
	Audiences []string
	// MaxExpiration, when set, caps a token's life
	// (--service-account-max-token-expiration).
	MaxExpiration time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// IssueRequest answers a TokenRequest (POST
// serviceaccounts/<name>/token) for sa: it validates and defaults the
// spec, checks the bound object exists with the UID given and, for a pod,
// runs as sa, and returns the request with its status filled. Errors are
// API statuses with upstream's texts.
func (s *Signer) IssueRequest(ctx context.Context, g Getter, sa *corev1.ServiceAccount, req *authenticationv1.TokenRequest, opts TokenRequestOptions) (*authenticationv1.TokenRequest, error) {
	out := req.DeepCopy()
	if out.Spec.ExpirationSeconds == nil {
		secs := int64(DefaultExpiration / time.Second)
		out.Spec.ExpirationSeconds = &secs
	}
	if len(out.Spec.Audiences) == 0 {
		out.Spec.Audiences = append([]string(nil), opts.Audiences...)
	}
	exp := time.Duration(*out.Spec.ExpirationSeconds) * time.Second
	var errs field.ErrorList
	specPath := field.NewPath("spec")
	switch {
	case exp < MinExpiration:
		errs = append(errs, field.Invalid(specPath.Child("expirationSeconds"), *out.Spec.ExpirationSeconds, "may not specify a duration less than 10 minutes"))
	case exp > maxExpiration:
		errs = append(errs, field.Invalid(specPath.Child("expirationSeconds"), *out.Spec.ExpirationSeconds, "may not specify a duration larger than 2^32 seconds"))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: authenticationv1.GroupName, Kind: "TokenRequest"}, sa.Name, errs)
	}
	if opts.MaxExpiration > 0 && exp > opts.MaxExpiration {
		exp = opts.MaxExpiration
		secs := int64(exp / time.Second)
		out.Spec.ExpirationSeconds = &secs
	}

	bt := BoundToken{ServiceAccount: sa, Audiences: out.Spec.Audiences, Expiration: exp}
	if opts.Now != nil {
		bt.Now = opts.Now()
	}
	if ref := out.Spec.BoundObjectRef; ref != nil {
		gvk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
		checkUID := func(uid types.UID) error {
			if ref.UID != "" && ref.UID != uid {
				return apierrors.NewConflict(schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}, ref.Name,
					fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
			}
			return nil
		}
		switch {
		case gvk.Group == "" && gvk.Version == "v1" && gvk.Kind == "Pod":
			pod, err := g.Pod(ctx, sa.Namespace, ref.Name)
			if err != nil {
				return nil, err
			}
			if err := checkUID(pod.UID); err != nil {
				return nil, err
			}
			if pod.Spec.ServiceAccountName != sa.Name {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to pod running with different serviceaccount name.", sa.Name))
			}
			bt.Pod = pod
			if pod.Spec.NodeName != "" {
				if node, err := g.Node(ctx, pod.Spec.NodeName); err == nil {
					bt.PodNode = node
				} else {
					bt.PodNode = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: pod.Spec.NodeName}}
				}
			}
		case gvk.Group == "" && gvk.Version == "v1" && gvk.Kind == "Secret":
			secret, err := g.Secret(ctx, sa.Namespace, ref.Name)
			if err != nil {
				return nil, err
			}
			if err := checkUID(secret.UID); err != nil {
				return nil, err
			}
			bt.Secret = secret
		case gvk.Group == "" && gvk.Version == "v1" && gvk.Kind == "Node":
			node, err := g.Node(ctx, ref.Name)
			if err != nil {
				return nil, err
			}
			if err := checkUID(node.UID); err != nil {
				return nil, err
			}
			bt.Node = node
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to object of type %s", sa.Name, gvk.String()))
		}
	}
	tok, expires, err := s.Issue(bt)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	out.Status = authenticationv1.TokenRequestStatus{Token: tok, ExpirationTimestamp: metav1.NewTime(expires)}
	return out, nil
}
