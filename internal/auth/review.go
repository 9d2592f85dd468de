package auth

import (
	"context"
	"errors"
	"slices"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
)

// ReviewAccess answers a SubjectAccessReview (and, with the spec's user
// filled from the caller, a SelfSubjectAccessReview or
// LocalSubjectAccessReview) with az's decision, as upstream.
func ReviewAccess(ctx context.Context, az Authorizer, spec authorizationv1.SubjectAccessReviewSpec) authorizationv1.SubjectAccessReviewStatus {
	u := &User{Name: spec.User, UID: spec.UID, Groups: spec.Groups}
	if len(spec.Extra) > 0 {
		u.Extra = map[string][]string{}
		for k, v := range spec.Extra {
			u.Extra[k] = v
		}
	}
	a := Attributes{User: u}
	switch {
	case spec.ResourceAttributes != nil:
		ra := spec.ResourceAttributes
		a.ResourceRequest = true
		a.Verb, a.APIGroup, a.APIVersion = ra.Verb, ra.Group, ra.Version
		a.Resource, a.Subresource, a.Namespace, a.Name = ra.Resource, ra.Subresource, ra.Namespace, ra.Name
	case spec.NonResourceAttributes != nil:
		a.Verb, a.Path = spec.NonResourceAttributes.Verb, spec.NonResourceAttributes.Path
	}
	d, reason, err := az.Authorize(ctx, a)
	st := authorizationv1.SubjectAccessReviewStatus{
		Allowed: d == DecisionAllow,
		Denied:  d == DecisionDeny,
		Reason:  reason,
	}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	return st
}

// ReviewRules answers a SelfSubjectRulesReview for u in namespace.
func ReviewRules(ctx context.Context, r RuleResolver, u *User, namespace string) authorizationv1.SubjectRulesReviewStatus {
	rules, err := r.RulesFor(ctx, u, namespace)
	st := authorizationv1.SubjectRulesReviewStatus{
		ResourceRules:    rules.ResourceRules,
		NonResourceRules: rules.NonResourceRules,
		Incomplete:       rules.Incomplete || err != nil,
	}
	if st.ResourceRules == nil {
		st.ResourceRules = []authorizationv1.ResourceRule{}
	}
	if st.NonResourceRules == nil {
		st.NonResourceRules = []authorizationv1.NonResourceRule{}
	}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	return st
}

// ReviewToken answers a TokenReview with the token authenticators. The
// spec's audiences, when given, replace the API server's for this check
// (see WithAudiences). A token that is not valid gets authenticated=false
// and the authenticators' errors.
func ReviewToken(ctx context.Context, tokens []TokenAuthenticator, spec authenticationv1.TokenReviewSpec) authenticationv1.TokenReviewStatus {
	if len(spec.Audiences) > 0 {
		ctx = WithAudiences(ctx, spec.Audiences)
	}
	var errs []error
	for _, t := range tokens {
		u, ok, err := t.AuthenticateToken(ctx, spec.Token)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		info := authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: slices.Clone(u.Groups)}
		if len(u.Extra) > 0 {
			info.Extra = map[string]authenticationv1.ExtraValue{}
			for k, v := range u.Extra {
				info.Extra[k] = v
			}
		}
		if !slices.Contains(info.Groups, AllAuthenticated) {
			info.Groups = append(info.Groups, AllAuthenticated)
		}
		return authenticationv1.TokenReviewStatus{Authenticated: true, User: info, Audiences: spec.Audiences}
	}
	if len(errs) == 0 {
		errs = append(errs, ErrInvalidBearerToken)
	}
	return authenticationv1.TokenReviewStatus{Error: errors.Join(errs...).Error()}
}

type audiencesKey struct{}

// WithAudiences returns ctx asking token authenticators to accept tokens
// for auds instead of the API server's own audiences (TokenReview).
func WithAudiences(ctx context.Context, auds []string) context.Context {
	return context.WithValue(ctx, audiencesKey{}, auds)
}

// AudiencesFrom returns the audiences set by WithAudiences.
func AudiencesFrom(ctx context.Context) ([]string, bool) {
	a, ok := ctx.Value(audiencesKey{}).([]string)
	return a, ok && len(a) > 0
}
