// Package builtin holds the OpenAPI definitions of the built-in kinds, as
// kube-openapi's openapi-gen generates them from k8s.io/api (see
// ../generate.go). The server does not link this code: ./dump writes the
// definitions as compressed JSON, which package openapi embeds, because the
// generated Go costs megabytes of binary and the JSON a few hundred
// kilobytes.
package builtin
