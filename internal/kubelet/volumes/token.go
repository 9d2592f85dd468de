package volumes

// Bound service account tokens for serviceAccountToken projections, as
// upstream's kubelet token manager: the node asks the API for a token bound
// to the pod (TokenRequest), keeps it in memory and asks for a new one when
// 80 % of its life has passed or it is older than 24 hours. Every pod sync
// refreshes the pod's volumes, so a running pod's token file follows within
// one sync interval; between renewals the cached token is written again
// unchanged (and the atomic writer skips an unchanged payload).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Token lifetimes, as upstream: the API's default for a projection, its
// minimum, and the age after which a token is renewed whatever its life.
const (
	defaultTokenExpiration = time.Hour
	minTokenExpiration     = 10 * time.Minute
	maxTokenAge            = 24 * time.Hour
)

// tokenKey names one cached token: a pod asks for one token per service
// account, audience and lifetime.
type tokenKey struct {
	podUID     types.UID
	account    string
	audience   string
	expiration int64
}

type cachedToken struct {
	token string
	// issued is when the token's life started: its expiry less the
	// lifetime the API granted, so renewal follows the API's clock.
	issued, expires time.Time
}

// tokens requests and caches bound tokens. Safe for concurrent use.
type tokens struct {
	client kubernetes.Interface
	clock  clock.PassiveClock

	mu    sync.Mutex
	cache map[tokenKey]cachedToken
}

func newTokens(client kubernetes.Interface, c clock.PassiveClock) *tokens {
	return &tokens{client: client, clock: c, cache: map[tokenKey]cachedToken{}}
}

// get returns a token for the projection src of pod: the cached one until
// it is due for renewal, else a new one from the API. When the API fails,
// a cached token that has not expired yet is still returned.
func (t *tokens) get(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) (string, error) {
	if pod.Spec.ServiceAccountName == "" {
		return "", errors.New("serviceAccountToken: the pod has no service account")
	}
	exp := int64(defaultTokenExpiration / time.Second)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	if time.Duration(exp)*time.Second < minTokenExpiration {
		return "", fmt.Errorf("serviceAccountToken %q: expirationSeconds %d is less than 10 minutes", src.Path, exp)
	}
	key := tokenKey{podUID: pod.UID, account: pod.Spec.ServiceAccountName, audience: src.Audience, expiration: exp}
	now := t.clock.Now()
	t.mu.Lock()
	cur, ok := t.cache[key]
	t.mu.Unlock()
	if ok && !dueForRenewal(cur, now) {
		return cur.token, nil
	}

	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef: &authenticationv1.BoundObjectReference{
			APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID,
		},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	resp, err := t.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, req, metav1.CreateOptions{})
	if err == nil {
		err = checkTokenResponse(resp, src.Audience)
	}
	if err != nil {
		if ok && now.Before(cur.expires) {
			// The old token is still good: renewal is retried on the
			// next sync.
			return cur.token, nil
		}
		return "", fmt.Errorf("request a token for service account %q: %w", pod.Spec.ServiceAccountName, err)
	}
	granted := time.Duration(exp) * time.Second
	if resp.Spec.ExpirationSeconds != nil {
		granted = time.Duration(*resp.Spec.ExpirationSeconds) * time.Second
	}
	expires := resp.Status.ExpirationTimestamp.Time
	tok := cachedToken{token: resp.Status.Token, issued: expires.Add(-granted), expires: expires}
	t.mu.Lock()
	t.cache[key] = tok
	t.mu.Unlock()
	return tok.token, nil
}

// checkTokenResponse refuses an answer the pod could not use.
func checkTokenResponse(resp *authenticationv1.TokenRequest, audience string) error {
	switch {
	case resp == nil || resp.Status.Token == "":
		return errors.New("the API returned no token")
	case resp.Status.ExpirationTimestamp.IsZero():
		return errors.New("the API returned a token without expiration")
	case audience != "" && !slices.Contains(resp.Spec.Audiences, audience):
		return fmt.Errorf("the API returned a token for audiences %s, not %q", strings.Join(resp.Spec.Audiences, ","), audience)
	}
	return nil
}

// dueForRenewal says whether tok should be replaced at now: it has
// expired, 80 % of its life has passed, or it is older than 24 hours.
func dueForRenewal(tok cachedToken, now time.Time) bool {
	if !now.Before(tok.expires) {
		return true
	}
	life := tok.expires.Sub(tok.issued)
	age := now.Sub(tok.issued)
	return age >= life*8/10 || age >= maxTokenAge
}

// forgetPod drops the pod's tokens (it is torn down).
func (t *tokens) forgetPod(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.cache {
		if k.podUID == uid {
			delete(t.cache, k)
		}
	}
}
