package auth

import (
	"context"
	"errors"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
)

// onlySecretsReader allows alice to get secrets in ns and GET /healthz.
type onlySecretsReader struct{}

func (onlySecretsReader) Authorize(_ context.Context, a Attributes) (Decision, string, error) {
	if a.User.Name == "alice" && a.ResourceRequest && a.Verb == "get" && a.Resource == "secrets" && a.Namespace == "ns" {
		return DecisionAllow, "RBAC: allowed by test", nil
	}
	if !a.ResourceRequest && a.Path == "/healthz" && a.Verb == "get" {
		return DecisionAllow, "", nil
	}
	if a.User.InGroup("blocked") {
		return DecisionDeny, "blocked", nil
	}
	return DecisionNoOpinion, "", errors.New("partial failure")
}

func (onlySecretsReader) RulesFor(context.Context, *User, string) (Rules, error) {
	return Rules{ResourceRules: []authorizationv1.ResourceRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}}}}, errors.New("one binding is broken")
}

func TestReviewAccess(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		spec authorizationv1.SubjectAccessReviewSpec
		want authorizationv1.SubjectAccessReviewStatus
	}{
		{"allowed", authorizationv1.SubjectAccessReviewSpec{User: "alice", ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "ns", Verb: "get", Resource: "secrets"}},
			authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "RBAC: allowed by test"}},
		{"not allowed", authorizationv1.SubjectAccessReviewSpec{User: "alice", ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "other", Verb: "get", Resource: "secrets"}},
			authorizationv1.SubjectAccessReviewStatus{EvaluationError: "partial failure"}},
		{"denied", authorizationv1.SubjectAccessReviewSpec{User: "bob", Groups: []string{"blocked"}, ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods"}},
			authorizationv1.SubjectAccessReviewStatus{Denied: true, Reason: "blocked"}},
		{"non-resource", authorizationv1.SubjectAccessReviewSpec{User: "bob", NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/healthz", Verb: "get"}},
			authorizationv1.SubjectAccessReviewStatus{Allowed: true}},
	}
	for _, tt := range tests {
		if got := ReviewAccess(ctx, onlySecretsReader{}, tt.spec); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
	st := ReviewRules(ctx, onlySecretsReader{}, &User{Name: "alice"}, "ns")
	if !st.Incomplete || st.EvaluationError == "" || len(st.ResourceRules) != 1 || st.NonResourceRules == nil {
		t.Fatalf("rules review %+v", st)
	}
}

func TestReviewToken(t *testing.T) {
	ctx := context.Background()
	var sawAudiences []string
	ta := TokenAuthenticatorFunc(func(ctx context.Context, tok string) (*User, bool, error) {
		sawAudiences, _ = AudiencesFrom(ctx)
		switch tok {
		case "good":
			return &User{Name: "svc", UID: "1", Groups: []string{"g"}, Extra: map[string][]string{"k": {"v"}}}, true, nil
		case "expired":
			return nil, false, errors.New("token is expired")
		}
		return nil, false, nil
	})
	st := ReviewToken(ctx, []TokenAuthenticator{ta}, authenticationv1.TokenReviewSpec{Token: "good", Audiences: []string{"vault"}})
	if !st.Authenticated || st.User.Username != "svc" || len(st.User.Groups) != 2 || st.User.Extra["k"][0] != "v" || st.Audiences[0] != "vault" {
		t.Fatalf("good: %+v", st)
	}
	if len(sawAudiences) != 1 || sawAudiences[0] != "vault" {
		t.Fatalf("audiences not passed: %v", sawAudiences)
	}
	if st := ReviewToken(ctx, []TokenAuthenticator{ta}, authenticationv1.TokenReviewSpec{Token: "expired"}); st.Authenticated || st.Error != "token is expired" {
		t.Fatalf("expired: %+v", st)
	}
	if st := ReviewToken(ctx, []TokenAuthenticator{ta}, authenticationv1.TokenReviewSpec{Token: "x"}); st.Authenticated || st.Error != "invalid bearer token" {
		t.Fatalf("unknown: %+v", st)
	}
}
