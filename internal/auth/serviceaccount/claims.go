package serviceaccount

import (
	"github.com/golang-jwt/jwt/v5"
)

// LegacyIssuer is the issuer of Secret-based tokens, as upstream.
const LegacyIssuer = "kubernetes/serviceaccount"

// Extra keys of a bound token's user, as upstream.
const (
	ExtraPodName      = "authentication.kubernetes.io/pod-name"
	ExtraPodUID       = "authentication.kubernetes.io/pod-uid"
	ExtraNodeName     = "authentication.kubernetes.io/node-name"
	ExtraNodeUID      = "authentication.kubernetes.io/node-uid"
	ExtraCredentialID = "authentication.kubernetes.io/credential-id"
)

type ref struct {
	Name string `json:"name,omitempty"`
	UID  string `json:"uid,omitempty"`
}

type kubernetesClaims struct {
	Namespace      string           `json:"namespace,omitempty"`
	ServiceAccount *ref             `json:"serviceaccount,omitempty"`
	Pod            *ref             `json:"pod,omitempty"`
	Secret         *ref             `json:"secret,omitempty"`
	Node           *ref             `json:"node,omitempty"`
	WarnAfter      *jwt.NumericDate `json:"warnafter,omitempty"`
}

// claims are both token formats' claims: bound tokens use the
// "kubernetes.io" object, legacy tokens the flat kubernetes.io/serviceaccount/
// keys.
type claims struct {
	jwt.RegisteredClaims
	Kubernetes *kubernetesClaims `json:"kubernetes.io,omitempty"`

	LegacyNamespace  string `json:"kubernetes.io/serviceaccount/namespace,omitempty"`
	LegacySecretName string `json:"kubernetes.io/serviceaccount/secret.name,omitempty"`
	LegacySAName     string `json:"kubernetes.io/serviceaccount/service-account.name,omitempty"`
	LegacySAUID      string `json:"kubernetes.io/serviceaccount/service-account.uid,omitempty"`
}
