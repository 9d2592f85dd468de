// Package serviceaccount issues and verifies service-account tokens with
// Kubernetes' claims, and serves the issuer's discovery documents.
//
// Bound tokens (TokenRequest, projected volumes) carry an audience, an
// expiry and the object they are bound to (a pod, a secret or a node);
// they are refused once that object is gone or has another UID. Legacy
// tokens live in Secrets of type kubernetes.io/service-account-token and
// are refused once the Secret or the ServiceAccount is gone.
package serviceaccount
