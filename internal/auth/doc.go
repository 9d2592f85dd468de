// Package auth decides who a request comes from and what it may do, with
// Kubernetes' semantics.
//
// A request goes through three steps, each a small interface here:
//
//	Authenticator   request → *User        (client certificates, bearer tokens, anonymous)
//	Impersonate     *User + headers → *User (Impersonate-User, -Group, -Uid, -Extra-*)
//	Authorizer      Attributes → Decision  (system:masters, then the node authorizer, then RBAC)
//
// A denial is answered with Forbidden, upstream's 403 and sentence.
//
// The implementations live in subpackages:
//
//	serviceaccount   bound and legacy service-account JWTs, TokenRequest,
//	                 issuer discovery, ServiceAccount admission for pods
//	rbac             the RBAC authorizer, rules for reviews, escalation
//	                 checks, the ClusterRole aggregation controller
//	node             the node authorizer and NodeRestriction admission
//	bootstrappolicy  the default roles and bindings, and Reconcile
//	stack            all of the above assembled over one informer factory
//
// This package holds the shared types, the chains, the x509 and anonymous
// authenticators, impersonation, reviews and Forbidden. It depends on no
// other skiff package.
package auth
