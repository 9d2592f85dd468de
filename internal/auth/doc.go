// Package auth decides who a request comes from and what it may do, with
// Kubernetes' semantics.
//
// A request goes through three steps, each a small interface here:
//
//	Authenticator   request → *User        (client certificates, bearer tokens, anonymous)
//	Impersonate     *User + headers → *User (Impersonate-User, -Group, -Uid, -Extra-*)
//	Authorizer      Attributes → Decision  (system:masters, then the node authorizer, then RBAC)
//
// The implementations live in subpackages: serviceaccount (JWTs and issuer
// discovery), rbac (the RBAC authorizer, aggregation and escalation checks),
// node (the node authorizer and NodeRestriction) and bootstrappolicy (the
// default roles and their reconciliation). This package holds the shared
// types, the chains, the x509 and anonymous authenticators, impersonation and
// upstream's Forbidden messages.
package auth
