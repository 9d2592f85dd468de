package images

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is the registry name users and Kubernetes write for Docker Hub;
// go-containerregistry calls it index.docker.io internally.
const dockerHub = "docker.io"

// NormalizeRef turns a user-written image reference into the fully qualified
// form the store keys images by: "busybox" -> "docker.io/library/busybox:latest",
// "127.0.0.1:5000/test:v1" stays as it is, and "repo:tag@sha256:..." becomes
// "repo@sha256:..." because the digest alone decides the content.
func NormalizeRef(ref string) (string, error) {
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	return refString(r), nil
}

func parseRef(ref string) (name.Reference, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, fmt.Errorf("parse image reference: empty reference")
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	return r, nil
}

// repoString is the normalized repository, "docker.io/library/busybox".
func repoString(repo name.Repository) string {
	return registryString(repo.Registry) + "/" + repo.RepositoryStr()
}

// registryString maps ggcr's "index.docker.io" back to "docker.io".
func registryString(reg name.Registry) string {
	return normalizeHost(reg.RegistryStr())
}

func refString(r name.Reference) string {
	switch r := r.(type) {
	case name.Digest:
		return repoString(r.Repository) + "@" + r.DigestStr()
	case name.Tag:
		return repoString(r.Repository) + ":" + r.TagStr()
	}
	return r.Name()
}

// normalizeHost reduces the many spellings of a registry found in docker
// config files and registries.yaml ("https://index.docker.io/v1/",
// "registry-1.docker.io", "http://127.0.0.1:5000") to a bare host[:port].
func normalizeHost(h string) string {
	h = strings.TrimSpace(h)
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	h = strings.ToLower(h)
	switch h {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return dockerHub
	}
	return h
}

// splitRepoTag splits a normalized "repo:tag" or "repo@digest" into the repo and
// the tag ("<none>" for digests), for listing.
func splitRepoTag(ref string) (repo, tag string) {
	if i := strings.LastIndexByte(ref, '@'); i >= 0 {
		return ref[:i], "<none>"
	}
	slash := strings.LastIndexByte(ref, '/')
	if i := strings.LastIndexByte(ref, ':'); i > slash {
		return ref[:i], ref[i+1:]
	}
	return ref, "<none>"
}
