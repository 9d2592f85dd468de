package bootstrappolicy

import (
	"maps"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
)

// ControllerRolePrefix starts the name of each controller's ClusterRole
// and ClusterRoleBinding, as upstream: system:controller:<account>.
const ControllerRolePrefix = "system:controller:"

// ControllerNamespace holds the controllers' service accounts.
const ControllerNamespace = "kube-system"

// controllers maps each controller's service account (in kube-system, as
// upstream names them) to its rules.
func controllers() map[string][]rbacv1.PolicyRule {
	return map[string][]rbacv1.PolicyRule{
		"clusterrole-aggregation-controller": {
			rule("escalate", "get", "list", "watch", "update", "patch").groups(rbacGroup).resources("clusterroles"),
		},
		"cronjob-controller": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "watch", "update").groups(batchGroup).resources("cronjobs"),
			rule("get", "list", "watch", "create", "update", "delete", "patch").groups(batchGroup).resources("jobs"),
			rule("update").groups(batchGroup).resources("cronjobs/status"),
			rule("update").groups(batchGroup).resources("cronjobs/finalizers"),
			rule("list", "delete").groups(legacyGroup).resources("pods"),
		}),
		"daemon-set-controller": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "watch").groups(extensionsGroup, appsGroup).resources("daemonsets"),
			rule("update").groups(extensionsGroup, appsGroup).resources("daemonsets/status"),
			rule("update").groups(extensionsGroup, appsGroup).resources("daemonsets/finalizers"),
			rule("list", "watch").groups(legacyGroup).resources("nodes"),
			rule("list", "watch", "create", "delete", "patch").groups(legacyGroup).resources("pods"),
			rule("create").groups(legacyGroup).resources("pods/binding"),
			rule("get", "list", "watch", "create", "delete", "update", "patch").groups(appsGroup).resources("controllerrevisions"),
		}),
		"deployment-controller": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "watch", "update").groups(extensionsGroup, appsGroup).resources("deployments"),
			rule("update").groups(extensionsGroup, appsGroup).resources("deployments/status"),
			rule("update").groups(extensionsGroup, appsGroup).resources("deployments/finalizers"),
			rule("get", "list", "watch", "create", "update", "patch", "delete").groups(appsGroup, extensionsGroup).resources("replicasets"),
			// The Recreate strategy lists pods; pods are labelled with
			// their template's hash.
			rule("get", "list", "watch", "update").groups(legacyGroup).resources("pods"),
		}),
		"endpoint-controller": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "watch").groups(legacyGroup).resources("services", "pods"),
			rule("get", "list", "create", "update", "delete").groups(legacyGroup).resources("endpoints"),
			rule("create").groups(legacyGroup).resources("endpoints/restricted"),
		}),
		"endpointslice-controller": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "watch").groups(legacyGroup).resources("services", "pods", "nodes"),
			rule("update").groups(legacyGroup).resources("services/finalizers"),
			rule("get", "list", "create", "update", "delete").groups(discoveryGroup).resources("endpointslices"),
		}),
		"generic-garbage-collector": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "watch", "patch", "update", "delete").groups("*").resources("*"),
		}),
		"job-controller": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "watch", "update", "patch").groups(batchGroup).resources("jobs"),
			rule("update").groups(batchGroup).resources("jobs/status"),
			rule("update").groups(batchGroup).resources("jobs/finalizers"),
			rule("list", "watch", "create", "delete", "patch").groups(legacyGroup).resources("pods"),
		}),
		"namespace-controller": {
			rule("get", "list", "watch", "delete").groups(legacyGroup).resources("namespaces"),
			rule("update").groups(legacyGroup).resources("namespaces/finalize", "namespaces/status"),
			rule("get", "list", "delete", "deletecollection").groups("*").resources("*"),
		},
		"node-controller": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "update", "delete", "patch").groups(legacyGroup).resources("nodes"),
			rule("patch", "update").groups(legacyGroup).resources("nodes/status"),
			// Marking pods on an unreachable node not ready, and
			// evicting them.
			rule("patch", "update").groups(legacyGroup).resources("pods/status"),
			rule("list", "delete").groups(legacyGroup).resources("pods"),
		}),
		"pod-garbage-collector": {
			rule("list", "watch", "delete").groups(legacyGroup).resources("pods"),
			rule("get", "list").groups(legacyGroup).resources("nodes"),
			rule("patch").groups(legacyGroup).resources("pods/status"),
		},
		"replicaset-controller": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "watch", "update").groups(appsGroup, extensionsGroup).resources("replicasets"),
			rule("update").groups(appsGroup, extensionsGroup).resources("replicasets/status"),
			rule("update").groups(appsGroup, extensionsGroup).resources("replicasets/finalizers"),
			rule("list", "watch", "patch", "create", "delete").groups(legacyGroup).resources("pods"),
		}),
		"persistent-volume-binder": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "watch", "update", "create", "delete").groups(legacyGroup).resources("persistentvolumes"),
			rule("update").groups(legacyGroup).resources("persistentvolumes/status"),
			rule("get", "list", "watch", "update").groups(legacyGroup).resources("persistentvolumeclaims"),
			rule("update").groups(legacyGroup).resources("persistentvolumeclaims/status"),
			rule("list", "watch", "get", "create", "delete").groups(legacyGroup).resources("pods"),
			rule("get", "list", "watch").groups(legacyGroup).resources("nodes"),
			rule(read...).groups(storageGroup).resources("storageclasses"),
		}),
		"service-account-controller": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("create").groups(legacyGroup).resources("serviceaccounts"),
		}),
		// Upstream's tokens controller runs with the controller manager's
		// own credential; skiff gives it an account of its own.
		"tokens-controller": {
			rule("get", "list", "watch", "update", "delete").groups(legacyGroup).resources("secrets"),
			rule(read...).groups(legacyGroup).resources("serviceaccounts"),
		},
		"root-ca-cert-publisher": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("create", "update").groups(legacyGroup).resources("configmaps"),
		}),
		"ttl-after-finished-controller": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "watch", "delete").groups(batchGroup).resources("jobs"),
		}),
		// skiff's local-path provisioner: it makes volumes for claims and
		// the helper pods that prepare them on nodes.
		"local-path-provisioner": concat(eventsRule(), []rbacv1.PolicyRule{
			rule("get", "list", "watch", "create", "delete", "update", "patch").groups(legacyGroup).resources("persistentvolumes"),
			rule("get", "list", "watch", "update", "patch").groups(legacyGroup).resources("persistentvolumeclaims"),
			rule(read...).groups(storageGroup).resources("storageclasses"),
			rule("get", "list", "watch", "create", "delete").groups(legacyGroup).resources("pods"),
			rule("get", "list", "watch").groups(legacyGroup).resources("nodes"),
		}),
	}
}

// ControllerServiceAccounts lists the controllers' service accounts (in
// ControllerNamespace), in order of name.
func ControllerServiceAccounts() []string {
	return slices.Sorted(maps.Keys(controllers()))
}

// skiffControllers maps skiff's controller names (internal/controller/...
// Name, and the manager's entry names) to upstream's service accounts.
func skiffControllers() map[string]string {
	return map[string]string{
		"job-controller":                  "job-controller",
		"job":                             "job-controller",
		"cronjob-controller":              "cronjob-controller",
		"cronjob":                         "cronjob-controller",
		"daemonset-controller":            "daemon-set-controller",
		"daemonset":                       "daemon-set-controller",
		"deployment-controller":           "deployment-controller",
		"deployment":                      "deployment-controller",
		"replicaset-controller":           "replicaset-controller",
		"replicaset":                      "replicaset-controller",
		"endpoints":                       "endpoint-controller",
		"endpointslice":                   "endpointslice-controller",
		"garbagecollector":                "generic-garbage-collector",
		"namespace":                       "namespace-controller",
		"nodelifecycle":                   "node-controller",
		"nodeipam":                        "node-controller",
		"podgc":                           "pod-garbage-collector",
		"persistentvolume-controller":     "persistent-volume-binder",
		"persistentvolume-binder":         "persistent-volume-binder",
		"local-path-provisioner":          "local-path-provisioner",
		"clusterrole-aggregation":         "clusterrole-aggregation-controller",
		"serviceaccount-controller":       "service-account-controller",
		"serviceaccount":                  "service-account-controller",
		"serviceaccount-token":            "tokens-controller",
		"root-ca-cert-publisher":          "root-ca-cert-publisher",
		"serviceaccount-token-controller": "tokens-controller",
	}
}

// ControllerServiceAccount returns the kube-system service account a skiff
// controller should act as, named by its manager entry or package Name.
func ControllerServiceAccount(controller string) (string, bool) {
	sa, ok := skiffControllers()[controller]
	return sa, ok
}

func controllerRoles() []rbacv1.ClusterRole {
	var out []rbacv1.ClusterRole
	c := controllers()
	for _, name := range ControllerServiceAccounts() {
		out = append(out, clusterRole(ControllerRolePrefix+name, nil, c[name]))
	}
	return out
}

func controllerBindings() []rbacv1.ClusterRoleBinding {
	var out []rbacv1.ClusterRoleBinding
	for _, name := range ControllerServiceAccounts() {
		out = append(out, clusterBinding(ControllerRolePrefix+name, ControllerRolePrefix+name, serviceAccount(ControllerNamespace, name)))
	}
	return out
}
