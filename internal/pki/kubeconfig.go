package pki

import (
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig renders a kubeconfig with one cluster, one user and one context,
// all called name (for example "default"), the current context set to it, and
// the CA, client certificate and key embedded so the file stands alone.
func Kubeconfig(name, serverURL string, caPEM, certPEM, keyPEM []byte) ([]byte, error) {
	if name == "" || serverURL == "" {
		return nil, fmt.Errorf("kubeconfig: name and server URL are required")
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   serverURL,
		CertificateAuthorityData: caPEM,
	}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{
		ClientCertificateData: certPEM,
		ClientKeyData:         keyPEM,
	}
	cfg.Contexts[name] = &clientcmdapi.Context{
		Cluster:  name,
		AuthInfo: name,
	}
	cfg.CurrentContext = name
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", name, err)
	}
	return data, nil
}
