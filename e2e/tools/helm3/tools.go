//go:build tools

// Module helm3 pins Helm v3, which the e2e tests build from its Go module
// (go build helm.sh/helm/v3/cmd/helm) to install charts the way users do.
// It is a module of its own so that Helm's dependencies stay out of skiff's.
package tools

import _ "helm.sh/helm/v3/pkg/action"
