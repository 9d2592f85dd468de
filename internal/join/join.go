// Package join holds the wire types of the join protocol that agents and
// servers share, so that an agent-side package never imports the API
// server to speak it.
package join

// Paths of the join protocol. They live outside /api and /apis because a
// joining node has no client certificate yet: /cacerts is anonymous (the
// node checks what it gets against the hash in its token), and node-certs
// authenticates with the join token itself.
const (
	CACertsPath   = "/cacerts"
	NodeCertsPath = "/v1-skiff/node-certs"
)

// Users of the certificates a node gets for its service proxy and its
// cluster DNS: upstream's names, which the default roles are bound to.
const (
	ProxyUser = "system:kube-proxy"
	DNSUser   = "system:kube-dns"
)

// NodeCertsRequest is the body of POST /v1-skiff/node-certs.
type NodeCertsRequest struct {
	NodeName string `json:"nodeName"`
	// ClientCSR and ServingCSR are PEM certificate requests; only their
	// public keys are used.
	ClientCSR  string `json:"clientCSR"`
	ServingCSR string `json:"servingCSR"`
	// ProxyCSR and DNSCSR, when set, ask for client certificates of the
	// node's service proxy (user system:kube-proxy) and cluster DNS (user
	// system:kube-dns), so that each acts with its own role rather than
	// the node's.
	ProxyCSR  string   `json:"proxyCSR,omitempty"`
	DNSCSR    string   `json:"dnsCSR,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	Hostnames []string `json:"hostnames,omitempty"`
	// NodePassword is a secret the node keeps. The first join of a name
	// pins the name to it, so another holder of the join token cannot get
	// certificates for a node that already exists (as k3s does).
	NodePassword string `json:"nodePassword"`
}

// NodeCertsResponse is the answer to POST /v1-skiff/node-certs.
type NodeCertsResponse struct {
	ClientCert  string `json:"clientCert"`
	ServingCert string `json:"servingCert"`
	ProxyCert   string `json:"proxyCert,omitempty"`
	DNSCert     string `json:"dnsCert,omitempty"`
	CA          string `json:"ca"`
}

// TokensPath rotates a join token: POST with a RotateTokenRequest, by a
// cluster admin's client certificate (group system:masters).
const TokensPath = "/v1-skiff/tokens"

// Roles a join token grants.
const (
	TokenRoleServer = "server"
	TokenRoleAgent  = "agent"
)

// RotateTokenRequest is the body of POST /v1-skiff/tokens.
type RotateTokenRequest struct {
	// Role is TokenRoleServer or TokenRoleAgent.
	Role string `json:"role"`
	// Secret, when set, is the new token's secret (a full token is taken
	// too); else the server makes a random one.
	Secret string `json:"secret,omitempty"`
}

// RotateTokenResponse is the answer to POST /v1-skiff/tokens.
type RotateTokenResponse struct {
	// Token is the new full token, K10<CA hash>::<user>:<secret>.
	Token string `json:"token"`
}
