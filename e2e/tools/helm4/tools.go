//go:build tools

// Module helm4 pins Helm v4, which the e2e tests build from its Go module
// (go build helm.sh/helm/v4/cmd/helm) to install charts the way users do.
// It is a module of its own so that Helm's dependencies stay out of skiff's.
package tools

import _ "helm.sh/helm/v4/pkg/action"
