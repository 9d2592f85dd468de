// Package layering holds the test that checks the import rules between
// skiff's packages (DESIGN.md's layout): layers import only downward, and
// an agent-side package never imports a server-side one.
package layering
