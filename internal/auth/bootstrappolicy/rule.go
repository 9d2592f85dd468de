// Package bootstrappolicy holds the ClusterRoles, ClusterRoleBindings,
// Roles and RoleBindings a cluster starts with (upstream's defaults, plus
// skiff's own parts), and Reconcile, which writes them at server start.
package bootstrappolicy

import (
	rbacv1 "k8s.io/api/rbac/v1"
)

// Verb sets, as upstream's policy uses them. rule copies them.
var (
	read      = []string{"get", "list", "watch"}
	write     = []string{"create", "update", "patch", "delete", "deletecollection"}
	readWrite = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	// readUpdate is for controllers that only change what they own.
	readUpdate = []string{"get", "list", "watch", "update", "patch"}
)

// API groups the policy names.
const (
	legacyGroup         = ""
	appsGroup           = "apps"
	authenticationGroup = "authentication.k8s.io"
	authorizationGroup  = "authorization.k8s.io"
	autoscalingGroup    = "autoscaling"
	batchGroup          = "batch"
	certificatesGroup   = "certificates.k8s.io"
	coordinationGroup   = "coordination.k8s.io"
	discoveryGroup      = "discovery.k8s.io"
	eventsGroup         = "events.k8s.io"
	extensionsGroup     = "extensions"
	networkingGroup     = "networking.k8s.io"
	nodeGroup           = "node.k8s.io"
	policyGroup         = "policy"
	rbacGroup           = rbacv1.GroupName
	schedulingGroup     = "scheduling.k8s.io"
	storageGroup        = "storage.k8s.io"
)

// rule builds a PolicyRule: rule(verbs...).groups(...).resources(...).
type ruleBuilder struct{ r rbacv1.PolicyRule }

func rule(verbs ...string) *ruleBuilder {
	return &ruleBuilder{rbacv1.PolicyRule{Verbs: append([]string(nil), verbs...)}}
}

func (b *ruleBuilder) groups(g ...string) *ruleBuilder { b.r.APIGroups = g; return b }
func (b *ruleBuilder) resources(r ...string) rbacv1.PolicyRule {
	b.r.Resources = r
	return b.r
}
func (b *ruleBuilder) names(n ...string) *ruleBuilder { b.r.ResourceNames = n; return b }
func (b *ruleBuilder) urls(u ...string) rbacv1.PolicyRule {
	b.r.NonResourceURLs = u
	return b.r
}

// eventsRule lets a component record events in both event APIs.
func eventsRule() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		rule("create", "update", "patch").groups(legacyGroup, eventsGroup).resources("events"),
	}
}

func concat(parts ...[]rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
