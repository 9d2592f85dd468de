package openapi

// The built-in definitions are generated from k8s.io/api by kube-openapi's
// openapi-gen, pinned in go.mod as a tool, into package builtin; its dump
// command then writes them as the compressed JSON this package embeds (the
// generated Go itself is not linked: it would cost megabytes). Only the
// groups skiff serves are listed, each at the versions it serves, with
// apiextensions.k8s.io/v1 for CustomResourceDefinitions (and
// scheduling/v1alpha3, which batch/v1 Job refers to). Run
// `go generate ./internal/openapi` after bumping k8s.io/api.
//
//go:generate go tool openapi-gen --output-dir ./builtin --output-pkg skiff/internal/openapi/builtin --output-file zz_generated.openapi.go --go-header-file /dev/null --report-filename /dev/null --readonly-pkg k8s.io/api --readonly-pkg k8s.io/apimachinery --readonly-pkg k8s.io/apiextensions-apiserver k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/util/intstr k8s.io/apimachinery/pkg/api/resource k8s.io/apimachinery/pkg/version k8s.io/api/core/v1 k8s.io/api/apps/v1 k8s.io/api/batch/v1 k8s.io/api/discovery/v1 k8s.io/api/coordination/v1 k8s.io/api/storage/v1 k8s.io/api/events/v1 k8s.io/api/policy/v1 k8s.io/api/autoscaling/v1 k8s.io/api/autoscaling/v2 k8s.io/api/authorization/v1 k8s.io/api/authentication/v1 k8s.io/api/rbac/v1 k8s.io/api/networking/v1 k8s.io/api/admissionregistration/v1 k8s.io/api/scheduling/v1alpha3 k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1
//go:generate go run ./builtin/dump -o builtin/definitions.json.gz
