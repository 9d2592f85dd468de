package bootstrappolicy

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/auth"
)

// Metadata every default object carries, as upstream: the bootstrapping
// label, and the annotation that lets Reconcile keep it up to date (a user
// sets it to "false" to keep their edits).
const (
	BootstrappingLabel   = "kubernetes.io/bootstrapping"
	BootstrappingValue   = "rbac-defaults"
	AutoUpdateAnnotation = rbacv1.AutoUpdateAnnotationKey

	aggregateToAdmin = "rbac.authorization.k8s.io/aggregate-to-admin"
	aggregateToEdit  = "rbac.authorization.k8s.io/aggregate-to-edit"
	aggregateToView  = "rbac.authorization.k8s.io/aggregate-to-view"
)

// Identities of skiff's own parts that are not service accounts.
const (
	// KubeletAPIClient is the name the API server presents to kubelets.
	KubeletAPIClient = "kube-apiserver-kubelet-client"
	// KubeDNS is the user cluster DNS authenticates as when it does not
	// run as the kube-system/kube-dns service account.
	KubeDNS = auth.KubeDNS
	// MonitoringGroup may read the metrics and health endpoints.
	MonitoringGroup = "system:monitoring"
)

func objectMeta(name string, labels map[string]string) metav1.ObjectMeta {
	l := map[string]string{BootstrappingLabel: BootstrappingValue}
	for k, v := range labels {
		l[k] = v
	}
	return metav1.ObjectMeta{Name: name, Labels: l, Annotations: map[string]string{AutoUpdateAnnotation: "true"}}
}

func clusterRole(name string, labels map[string]string, rules ...[]rbacv1.PolicyRule) rbacv1.ClusterRole {
	return rbacv1.ClusterRole{ObjectMeta: objectMeta(name, labels), Rules: concat(rules...)}
}

func aggregated(name string, labels map[string]string, selectorLabel string) rbacv1.ClusterRole {
	return rbacv1.ClusterRole{
		ObjectMeta: objectMeta(name, labels),
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
			{MatchLabels: map[string]string{selectorLabel: "true"}},
		}},
	}
}

// NodeRules are what every node may do at most; the node authorizer
// narrows reads of secrets, config maps, claims and volumes, and writes to
// nodes, leases and pods, to the node's own.
func NodeRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		// Checking API access; these creates change nothing.
		rule("create").groups(authenticationGroup).resources("tokenreviews"),
		rule("create").groups(authorizationGroup).resources("subjectaccessreviews", "localsubjectaccessreviews"),
		// Service environment variables.
		rule(read...).groups(legacyGroup).resources("services"),
		// Registering and reporting on its Node.
		rule("create", "get", "list", "watch").groups(legacyGroup).resources("nodes"),
		rule("update", "patch").groups(legacyGroup).resources("nodes/status"),
		rule("update", "patch").groups(legacyGroup).resources("nodes"),
		rule("create", "update", "patch").groups(legacyGroup, eventsGroup).resources("events"),
		// Its pods, mirror pods, their status and evictions.
		rule(read...).groups(legacyGroup).resources("pods"),
		rule("create", "delete").groups(legacyGroup).resources("pods"),
		rule("update", "patch").groups(legacyGroup).resources("pods/status"),
		rule("create").groups(legacyGroup).resources("pods/eviction"),
		// What its pods need.
		rule("get", "list", "watch").groups(legacyGroup).resources("secrets", "configmaps"),
		rule("get").groups(legacyGroup).resources("persistentvolumeclaims", "persistentvolumes"),
		rule("get", "update", "patch").groups(legacyGroup).resources("persistentvolumeclaims/status"),
		rule("get").groups(legacyGroup).resources("endpoints"),
		rule("create").groups(legacyGroup).resources("serviceaccounts/token"),
		// Certificate rotation and the node lease.
		rule("create", "get", "list", "watch").groups(certificatesGroup).resources("certificatesigningrequests"),
		rule("get", "create", "update", "patch", "delete").groups(coordinationGroup).resources("leases"),
		// Storage and runtime classes.
		rule("get").groups(storageGroup).resources("volumeattachments"),
		rule("get", "create", "update", "patch", "delete").groups(storageGroup).resources("csinodes"),
		rule(read...).groups(storageGroup).resources("csidrivers"),
		rule(read...).groups(nodeGroup).resources("runtimeclasses"),
	}
}

// ClusterRoles are the default ClusterRoles.
func ClusterRoles() []rbacv1.ClusterRole {
	roles := []rbacv1.ClusterRole{
		clusterRole("cluster-admin", nil, []rbacv1.PolicyRule{
			rule("*").groups("*").resources("*"),
			rule("*").urls("*"),
		}),
		clusterRole("system:discovery", nil, []rbacv1.PolicyRule{
			rule("get").urls("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"),
		}),
		clusterRole("system:public-info-viewer", nil, []rbacv1.PolicyRule{
			rule("get").urls("/healthz", "/livez", "/readyz", "/version", "/version/"),
		}),
		clusterRole("system:basic-user", nil, []rbacv1.PolicyRule{
			rule("create").groups(authorizationGroup).resources("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
			rule("create").groups(authenticationGroup).resources("selfsubjectreviews"),
		}),
		clusterRole("system:service-account-issuer-discovery", nil, []rbacv1.PolicyRule{
			rule("get").urls("/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks", "/openid/v1/jwks/"),
		}),
		clusterRole("system:monitoring", nil, []rbacv1.PolicyRule{
			rule("get").urls("/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*", "/healthz/*"),
		}),

		// admin, edit and view gather their rules from the roles labelled
		// for them, so custom resources can extend them.
		aggregated("admin", nil, aggregateToAdmin),
		aggregated("edit", map[string]string{aggregateToAdmin: "true"}, aggregateToEdit),
		aggregated("view", map[string]string{aggregateToEdit: "true"}, aggregateToView),
		clusterRole("system:aggregate-to-admin", map[string]string{aggregateToAdmin: "true"}, []rbacv1.PolicyRule{
			rule("create").groups(authorizationGroup).resources("localsubjectaccessreviews"),
			rule(readWrite...).groups(rbacGroup).resources("roles", "rolebindings"),
		}),
		clusterRole("system:aggregate-to-edit", map[string]string{aggregateToEdit: "true"}, editRules()),
		clusterRole("system:aggregate-to-view", map[string]string{aggregateToView: "true"}, viewRules()),

		clusterRole("system:node", nil, NodeRules()),
		clusterRole("system:node-proxier", nil, []rbacv1.PolicyRule{
			rule("list", "watch").groups(legacyGroup).resources("services", "endpoints"),
			rule("list", "watch").groups(discoveryGroup).resources("endpointslices"),
			rule(read...).groups(legacyGroup).resources("nodes"),
			// skiff's proxy reports load-balancer addresses.
			rule("update", "patch").groups(legacyGroup).resources("services/status"),
		}, eventsRule()),
		clusterRole("system:node-bootstrapper", nil, []rbacv1.PolicyRule{
			rule("create", "get", "list", "watch").groups(certificatesGroup).resources("certificatesigningrequests"),
		}),
		clusterRole("system:node-problem-detector", nil, []rbacv1.PolicyRule{
			rule("get").groups(legacyGroup).resources("nodes"),
			rule("patch").groups(legacyGroup).resources("nodes/status"),
		}, eventsRule()),
		clusterRole("system:kubelet-api-admin", nil, []rbacv1.PolicyRule{
			rule(read...).groups(legacyGroup).resources("nodes"),
			rule("proxy").groups(legacyGroup).resources("nodes"),
			rule("*").groups(legacyGroup).resources("nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log", "nodes/pods", "nodes/healthz", "nodes/configz", "nodes/checkpoint"),
		}),
		clusterRole("system:auth-delegator", nil, []rbacv1.PolicyRule{
			rule("create").groups(authenticationGroup).resources("tokenreviews"),
			rule("create").groups(authorizationGroup).resources("subjectaccessreviews"),
		}),
		clusterRole("system:kube-aggregator", nil, []rbacv1.PolicyRule{
			rule(read...).groups(legacyGroup).resources("services", "endpoints"),
		}),
		clusterRole("system:kube-dns", nil, []rbacv1.PolicyRule{
			rule("list", "watch").groups(legacyGroup).resources("endpoints", "services"),
			rule("list", "watch").groups(discoveryGroup).resources("endpointslices"),
		}),
		clusterRole("system:persistent-volume-provisioner", nil, []rbacv1.PolicyRule{
			rule("get", "list", "watch", "create", "delete").groups(legacyGroup).resources("persistentvolumes"),
			rule("get", "list", "watch", "update").groups(legacyGroup).resources("persistentvolumeclaims"),
			rule(read...).groups(storageGroup).resources("storageclasses"),
			rule("watch").groups(legacyGroup).resources("events"),
		}, eventsRule()),
		clusterRole("system:volume-scheduler", nil, []rbacv1.PolicyRule{
			rule(readUpdate...).groups(legacyGroup).resources("persistentvolumes"),
			rule(read...).groups(storageGroup).resources("storageclasses"),
			rule(readUpdate...).groups(legacyGroup).resources("persistentvolumeclaims"),
		}),
		clusterRole("system:kube-scheduler", nil, schedulerRules()),
		clusterRole("system:kube-controller-manager", nil, controllerManagerRules()),
		clusterRole("system:certificates.k8s.io:certificatesigningrequests:nodeclient", nil, []rbacv1.PolicyRule{
			rule("create").groups(certificatesGroup).resources("certificatesigningrequests/nodeclient"),
		}),
		clusterRole("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", nil, []rbacv1.PolicyRule{
			rule("create").groups(certificatesGroup).resources("certificatesigningrequests/selfnodeclient"),
		}),
	}
	return append(roles, controllerRoles()...)
}

func viewRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		rule(read...).groups(legacyGroup).resources("pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
			"services", "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"),
		rule(read...).groups(legacyGroup).resources("limitranges", "resourcequotas", "bindings", "events",
			"pods/status", "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log"),
		// Reading namespaces at namespace scope means reading this one.
		rule(read...).groups(legacyGroup).resources("namespaces"),
		rule(read...).groups(discoveryGroup).resources("endpointslices"),
		rule(read...).groups(appsGroup).resources("controllerrevisions",
			"statefulsets", "statefulsets/status", "statefulsets/scale",
			"daemonsets", "daemonsets/status",
			"deployments", "deployments/status", "deployments/scale",
			"replicasets", "replicasets/status", "replicasets/scale"),
		rule(read...).groups(autoscalingGroup).resources("horizontalpodautoscalers", "horizontalpodautoscalers/status"),
		rule(read...).groups(batchGroup).resources("jobs", "jobs/status", "cronjobs", "cronjobs/status"),
		rule(read...).groups(extensionsGroup).resources("daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
			"ingresses", "ingresses/status", "replicasets", "replicasets/scale", "replicasets/status", "replicationcontrollers/scale", "networkpolicies"),
		rule(read...).groups(policyGroup).resources("poddisruptionbudgets", "poddisruptionbudgets/status"),
		rule(read...).groups(networkingGroup).resources("networkpolicies", "ingresses", "ingresses/status"),
	}
}

func editRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		rule("impersonate").groups(legacyGroup).resources("serviceaccounts"),
		rule(write...).groups(legacyGroup).resources("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"),
		rule("create").groups(legacyGroup).resources("pods/eviction"),
		rule(write...).groups(legacyGroup).resources("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
			"services", "services/proxy", "persistentvolumeclaims", "configmaps", "secrets"),
		rule("create").groups(legacyGroup).resources("serviceaccounts/token"),
		// Secrets and the proxy subresources are not in view.
		rule(read...).groups(legacyGroup).resources("pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"),
		rule(write...).groups(appsGroup).resources("statefulsets", "statefulsets/scale",
			"daemonsets", "deployments", "deployments/scale", "deployments/rollback", "replicasets", "replicasets/scale"),
		rule(write...).groups(autoscalingGroup).resources("horizontalpodautoscalers"),
		rule(write...).groups(batchGroup).resources("jobs", "cronjobs"),
		rule(write...).groups(extensionsGroup).resources("daemonsets", "deployments", "deployments/scale", "deployments/rollback",
			"ingresses", "replicasets", "replicasets/scale", "replicationcontrollers/scale", "networkpolicies"),
		rule(write...).groups(policyGroup).resources("poddisruptionbudgets"),
		rule(write...).groups(networkingGroup).resources("networkpolicies", "ingresses"),
	}
}

func schedulerRules() []rbacv1.PolicyRule {
	return concat(eventsRule(), []rbacv1.PolicyRule{
		// Leader election.
		rule("create").groups(coordinationGroup).resources("leases"),
		rule("get", "update").groups(coordinationGroup).names("kube-scheduler").resources("leases"),
		// What it schedules, and onto what.
		rule(read...).groups(legacyGroup).resources("nodes"),
		rule(read...).groups(legacyGroup).resources("pods"),
		rule("delete").groups(legacyGroup).resources("pods"),
		rule("create").groups(legacyGroup).resources("pods/binding", "bindings"),
		rule("patch", "update").groups(legacyGroup).resources("pods/status"),
		// Spreading and affinity.
		rule(read...).groups(legacyGroup).resources("replicationcontrollers", "services", "namespaces"),
		rule(read...).groups(appsGroup, extensionsGroup).resources("replicasets"),
		rule(read...).groups(appsGroup).resources("statefulsets"),
		rule(read...).groups(policyGroup).resources("poddisruptionbudgets"),
		rule(read...).groups(legacyGroup).resources("persistentvolumeclaims", "persistentvolumes"),
		rule(read...).groups(storageGroup).resources("csinodes", "csidrivers", "csistoragecapacities", "storageclasses"),
		rule(read...).groups(schedulingGroup).resources("priorityclasses"),
		rule("create").groups(authenticationGroup).resources("tokenreviews"),
		rule("create").groups(authorizationGroup).resources("subjectaccessreviews"),
	})
}

func controllerManagerRules() []rbacv1.PolicyRule {
	return concat(eventsRule(), []rbacv1.PolicyRule{
		rule("create").groups(coordinationGroup).resources("leases"),
		rule("get", "update").groups(coordinationGroup).names("kube-controller-manager").resources("leases"),
		rule("create").groups(legacyGroup).resources("secrets", "serviceaccounts"),
		rule("delete").groups(legacyGroup).resources("secrets"),
		rule("get").groups(legacyGroup).resources("namespaces", "secrets", "serviceaccounts", "configmaps"),
		rule("update").groups(legacyGroup).resources("secrets", "serviceaccounts"),
		rule("create").groups(authenticationGroup).resources("tokenreviews"),
		rule("create").groups(authorizationGroup).resources("subjectaccessreviews"),
		// Every shared informer.
		rule("list", "watch").groups("*").resources("*"),
		rule("create").groups(legacyGroup).resources("serviceaccounts/token"),
	})
}

// ClusterRoleBindings are the default ClusterRoleBindings.
func ClusterRoleBindings() []rbacv1.ClusterRoleBinding {
	bindings := []rbacv1.ClusterRoleBinding{
		clusterBinding("cluster-admin", "cluster-admin", group(auth.SystemPrivilegedGroup)),
		clusterBinding("system:discovery", "system:discovery", group(auth.AllAuthenticated)),
		clusterBinding("system:basic-user", "system:basic-user", group(auth.AllAuthenticated)),
		clusterBinding("system:public-info-viewer", "system:public-info-viewer", group(auth.AllAuthenticated), group(auth.AllUnauthenticated)),
		// Systems outside the cluster verify pod identities with the
		// issuer's documents, so anyone may read them (upstream binds only
		// service accounts and leaves the rest to the administrator).
		clusterBinding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
			group(auth.AllServiceAccountsGroup), group(auth.AllAuthenticated), group(auth.AllUnauthenticated)),
		clusterBinding("system:monitoring", "system:monitoring", group(MonitoringGroup)),
		// Nodes get their rules through the node authorizer; the binding
		// has no subjects, as upstream.
		clusterBinding("system:node", "system:node"),
		clusterBinding("system:node-proxier", "system:node-proxier", user(auth.KubeProxy)),
		clusterBinding("system:kube-controller-manager", "system:kube-controller-manager", user(auth.KubeControllerManager)),
		clusterBinding("system:kube-dns", "system:kube-dns", serviceAccount("kube-system", "kube-dns"), user(KubeDNS)),
		clusterBinding("system:kube-scheduler", "system:kube-scheduler", user(auth.KubeScheduler)),
		clusterBinding("system:volume-scheduler", "system:volume-scheduler", user(auth.KubeScheduler)),
		clusterBinding("system:kubelet-api-admin", "system:kubelet-api-admin", user(KubeletAPIClient)),
	}
	return append(bindings, controllerBindings()...)
}

// Roles are the default namespaced Roles, by namespace.
func Roles() []rbacv1.Role {
	role := func(ns, name string, rules ...rbacv1.PolicyRule) rbacv1.Role {
		m := objectMeta(name, nil)
		m.Namespace = ns
		return rbacv1.Role{ObjectMeta: m, Rules: rules}
	}
	return []rbacv1.Role{
		role("kube-public", "system:controller:bootstrap-signer",
			rule(read...).groups(legacyGroup).resources("configmaps"),
			rule("update").groups(legacyGroup).names("cluster-info").resources("configmaps")),
		role("kube-system", "extension-apiserver-authentication-reader",
			rule(read...).groups(legacyGroup).names("extension-apiserver-authentication").resources("configmaps")),
		role("kube-system", "system::leader-locking-kube-controller-manager",
			rule("watch").groups(legacyGroup).resources("configmaps"),
			rule("get", "update").groups(legacyGroup).names("kube-controller-manager").resources("configmaps")),
		role("kube-system", "system::leader-locking-kube-scheduler",
			rule("watch").groups(legacyGroup).resources("configmaps"),
			rule("get", "update").groups(legacyGroup).names("kube-scheduler").resources("configmaps")),
	}
}

// RoleBindings are the default namespaced RoleBindings.
func RoleBindings() []rbacv1.RoleBinding {
	binding := func(ns, name, roleName string, subjects ...rbacv1.Subject) rbacv1.RoleBinding {
		m := objectMeta(name, nil)
		m.Namespace = ns
		return rbacv1.RoleBinding{ObjectMeta: m, RoleRef: rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "Role", Name: roleName}, Subjects: subjects}
	}
	return []rbacv1.RoleBinding{
		binding("kube-public", "system:controller:bootstrap-signer", "system:controller:bootstrap-signer", serviceAccount("kube-system", "bootstrap-signer")),
		binding("kube-system", "system::extension-apiserver-authentication-reader", "extension-apiserver-authentication-reader",
			user(auth.KubeControllerManager), user(auth.KubeScheduler)),
		binding("kube-system", "system::leader-locking-kube-controller-manager", "system::leader-locking-kube-controller-manager",
			user(auth.KubeControllerManager), serviceAccount("kube-system", "kube-controller-manager")),
		binding("kube-system", "system::leader-locking-kube-scheduler", "system::leader-locking-kube-scheduler",
			user(auth.KubeScheduler), serviceAccount("kube-system", "kube-scheduler")),
	}
}

func clusterBinding(name, roleName string, subjects ...rbacv1.Subject) rbacv1.ClusterRoleBinding {
	return rbacv1.ClusterRoleBinding{
		ObjectMeta: objectMeta(name, nil),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "ClusterRole", Name: roleName},
		Subjects:   subjects,
	}
}

func user(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacGroup, Name: name}
}

func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacGroup, Name: name}
}

func serviceAccount(namespace, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}
}
