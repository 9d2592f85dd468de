package node

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"

	"skiff/internal/auth"
	"skiff/internal/auth/bootstrappolicy"
	"skiff/internal/auth/rbac"
)

// LeaseNamespace holds node leases.
const LeaseNamespace = "kube-node-lease"

// Authorizer is the node authorizer. It decides for node identities only
// (others get no opinion): reads of secrets, config maps, claims, volumes
// and service-account tokens are allowed only for what pods bound to the
// node use; writes to Nodes, Leases and pods only for the node's own;
// everything else by bootstrappolicy.NodeRules.
type Authorizer struct {
	g     *Graph
	rules []rbacv1.PolicyRule
}

// NewAuthorizer returns the node authorizer over g.
func NewAuthorizer(g *Graph) *Authorizer {
	return &Authorizer{g: g, rules: bootstrappolicy.NodeRules()}
}

var _ auth.AuthorizerResolver = (*Authorizer)(nil)

func noRelationship(node string) string {
	return fmt.Sprintf("no relationship found between node '%s' and this object", node)
}

// Authorize implements auth.Authorizer.
func (a *Authorizer) Authorize(_ context.Context, attrs auth.Attributes) (auth.Decision, string, error) {
	node, ok := attrs.User.NodeName()
	if !ok {
		return auth.DecisionNoOpinion, "", nil
	}
	if attrs.ResourceRequest {
		switch attrs.APIGroup {
		case "":
			switch attrs.Resource {
			case "secrets":
				return a.read(node, attrs, func() bool { return a.g.secretOnNode(node, attrs.Namespace, attrs.Name) })
			case "configmaps":
				return a.read(node, attrs, func() bool { return a.g.hasRef(node, objRef{kindConfigMap, attrs.Namespace, attrs.Name}) })
			case "persistentvolumeclaims":
				return a.claim(node, attrs)
			case "persistentvolumes":
				if attrs.Verb != "get" || attrs.Subresource != "" {
					return auth.DecisionNoOpinion, "can only get individual resources of this type", nil
				}
				return a.decide(node, attrs.Name != "" && a.g.volumeOnNode(node, attrs.Name))
			case "serviceaccounts":
				return a.token(node, attrs)
			case "nodes":
				return a.nodeObject(node, attrs)
			case "pods":
				return a.pod(node, attrs)
			}
		case "coordination.k8s.io":
			if attrs.Resource == "leases" {
				return a.lease(node, attrs)
			}
		}
	}
	if rbac.RulesAllow(attrs, a.rules...) {
		return auth.DecisionAllow, "", nil
	}
	return auth.DecisionNoOpinion, "", nil
}

func (a *Authorizer) decide(node string, related bool) (auth.Decision, string, error) {
	if !related {
		return auth.DecisionNoOpinion, noRelationship(node), nil
	}
	return auth.DecisionAllow, "", nil
}

// read allows get, and list and watch of one object by name (a
// metadata.name field selector), of an object a pod on the node needs.
func (a *Authorizer) read(node string, attrs auth.Attributes, related func() bool) (auth.Decision, string, error) {
	switch attrs.Verb {
	case "get", "list", "watch":
	default:
		return auth.DecisionNoOpinion, "can only read resources of this type", nil
	}
	if attrs.Subresource != "" {
		return auth.DecisionNoOpinion, "cannot read subresource", nil
	}
	if attrs.Namespace == "" {
		return auth.DecisionNoOpinion, "can only read namespaced object of this type", nil
	}
	if attrs.Name == "" {
		return auth.DecisionNoOpinion, "No Object name found", nil
	}
	return a.decide(node, related())
}

func (a *Authorizer) claim(node string, attrs auth.Attributes) (auth.Decision, string, error) {
	related := func() bool { return a.g.hasRef(node, objRef{kindPVC, attrs.Namespace, attrs.Name}) }
	switch attrs.Subresource {
	case "":
		if attrs.Verb != "get" {
			return auth.DecisionNoOpinion, "can only get individual resources of this type", nil
		}
	case "status":
		switch attrs.Verb {
		case "get", "update", "patch":
		default:
			return auth.DecisionNoOpinion, "can only get, update or patch the status of this type", nil
		}
	default:
		return auth.DecisionNoOpinion, "cannot access this subresource", nil
	}
	if attrs.Name == "" {
		return auth.DecisionNoOpinion, "No Object name found", nil
	}
	return a.decide(node, related())
}

// token allows creating tokens for the service accounts of the node's
// pods; NodeRestriction checks the token is bound to such a pod.
func (a *Authorizer) token(node string, attrs auth.Attributes) (auth.Decision, string, error) {
	if attrs.Verb != "create" || attrs.Name == "" {
		return auth.DecisionNoOpinion, "can only create tokens for individual service accounts", nil
	}
	if attrs.Subresource != "token" {
		return auth.DecisionNoOpinion, "can only create token subresource of serviceaccount", nil
	}
	return a.decide(node, a.g.hasRef(node, objRef{kindServiceAccount, attrs.Namespace, attrs.Name}))
}

// nodeObject lets a node change and delete only its own Node. Creating
// one is allowed here; NodeRestriction checks the name.
func (a *Authorizer) nodeObject(node string, attrs auth.Attributes) (auth.Decision, string, error) {
	switch attrs.Verb {
	case "update", "patch", "delete":
		if attrs.Name != node {
			return auth.DecisionNoOpinion, fmt.Sprintf("node '%s' can only modify its own Node object", node), nil
		}
	}
	if rbac.RulesAllow(attrs, a.rules...) {
		return auth.DecisionAllow, "", nil
	}
	return auth.DecisionNoOpinion, "", nil
}

// pod lets a node write only pods bound to it: status updates, evictions
// and deletions. Reads follow NodeRules; creating mirror pods is left to
// NodeRestriction.
func (a *Authorizer) pod(node string, attrs auth.Attributes) (auth.Decision, string, error) {
	write := false
	switch {
	case attrs.Subresource == "status" && (attrs.Verb == "update" || attrs.Verb == "patch"):
		write = true
	case attrs.Subresource == "eviction" && attrs.Verb == "create":
		write = true
	case attrs.Subresource == "" && attrs.Verb == "delete":
		write = true
	}
	if write && (attrs.Name == "" || !a.g.podOnNode(node, attrs.Namespace, attrs.Name)) {
		return auth.DecisionNoOpinion, noRelationship(node), nil
	}
	if rbac.RulesAllow(attrs, a.rules...) {
		return auth.DecisionAllow, "", nil
	}
	return auth.DecisionNoOpinion, "", nil
}

func (a *Authorizer) lease(node string, attrs auth.Attributes) (auth.Decision, string, error) {
	switch attrs.Verb {
	case "get", "create", "update", "patch", "delete":
	default:
		return auth.DecisionNoOpinion, "can only get, create, update, patch, or delete a node lease", nil
	}
	if attrs.Namespace != LeaseNamespace {
		return auth.DecisionNoOpinion, fmt.Sprintf("can only access leases in the %q system namespace", LeaseNamespace), nil
	}
	// A create's name is not known here; NodeRestriction checks it.
	if attrs.Verb != "create" && attrs.Name != node {
		return auth.DecisionNoOpinion, "can only access node lease with the same name as the requesting node", nil
	}
	return auth.DecisionAllow, "", nil
}

// RulesFor implements auth.RuleResolver: a node's static rules, marked
// incomplete because its object-by-object grants cannot be listed.
func (a *Authorizer) RulesFor(_ context.Context, u *auth.User, _ string) (auth.Rules, error) {
	if _, ok := u.NodeName(); !ok {
		return auth.Rules{}, nil
	}
	r := rbac.ReviewRules(a.rules)
	r.Incomplete = true
	return r, nil
}
