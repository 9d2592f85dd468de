package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"

	"skiff/internal/config"
	"skiff/internal/pki"
)

// UserKubeconfig makes a kubeconfig for a user of the cluster whose server
// keeps its state in dataDir: a new key, and a client certificate signed by
// the cluster CA with CN=user and O=groups (the Kubernetes user name and
// groups, valid one year), for the API server the admin kubeconfig names.
// Nothing is written; what the user may do is up to RBAC.
func UserKubeconfig(dataDir, user string, groups []string) ([]byte, error) {
	user = strings.TrimSpace(user)
	if user == "" {
		return nil, errors.New("a user name is required")
	}
	layout := config.Layout{DataDir: dataDir}
	admin, err := ReadKubeconfig(dataDir)
	if err != nil {
		return nil, err
	}
	kc, err := clientcmd.Load(admin)
	if err != nil {
		return nil, fmt.Errorf("read the admin kubeconfig: %w", err)
	}
	cur := kc.Contexts[kc.CurrentContext]
	if cur == nil || kc.Clusters[cur.Cluster] == nil {
		return nil, errors.New("the admin kubeconfig has no current cluster")
	}
	serverURL := kc.Clusters[cur.Cluster].Server
	// Load the CA, never create one: a new CA would be trusted by nobody.
	dir := layout.TLSDir()
	if _, err := os.Stat(filepath.Join(dir, "ca.key")); err != nil {
		return nil, fmt.Errorf("no cluster CA key in %s (run this on a server): %w", dir, err)
	}
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		return nil, err
	}
	key, keyPEM, err := pki.GenerateKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, user)
	if err != nil {
		return nil, err
	}
	certPEM, err := ca.SignClientCSR(csr, user, groups)
	if err != nil {
		return nil, err
	}
	return pki.Kubeconfig("default", serverURL, ca.CertPEM, certPEM, keyPEM)
}
