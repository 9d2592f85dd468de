package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"skiff/internal/config"
	"skiff/internal/etcd"
	"skiff/internal/pki"
)

// etcd has a CA of its own. It signs only what servers use to talk to etcd:
// the client port's server certificate, the peer certificate and the client
// certificate of local tools. The cluster CA signs agents and users too, so
// a certificate of an agent, a node or a user is never accepted by etcd.
//
// One etcd CA (k3s has a server CA and a peer CA) is enough here: every
// certificate it signs is held by a server, which holds all three on the
// same disk with the etcd CA's key itself, so a separate peer CA would keep
// out no one who is not already in. The server's own parts do not present
// any of them: they use etcd's in-process client, which does not go through
// a port at all.
//
// The etcd CA is made at cluster init and handed to joining servers in the
// sealed bootstrap data; each server signs its own etcd certificates.

// etcdCAName prefixes the etcd CA's CN.
const etcdCAName = "skiff-etcd-ca"

// etcdClientCN is the client certificate's CN: etcd logs it for a request
// it refuses, and a future etcd RBAC would name it.
const etcdClientCN = "skiff-etcd-client"

// Certificate names under Layout.EtcdTLSDir.
const (
	etcdServerCertName = "server"
	etcdPeerCertName   = "peer"
	etcdClientCertName = "client"
)

// EtcdClientTLS names the files a local client of the etcd of the server
// with dataDir presents (`skiff etcd-snapshot save`); they exist once the
// server has started.
func EtcdClientTLS(dataDir string) etcd.TLSFiles {
	dir := config.Layout{DataDir: dataDir}.EtcdTLSDir()
	return etcd.TLSFiles{
		CertFile: filepath.Join(dir, etcdClientCertName+".crt"),
		KeyFile:  filepath.Join(dir, etcdClientCertName+".key"),
		CAFile:   filepath.Join(dir, "ca.crt"),
	}
}

// ensureEtcdTLS creates (first start, or first start after an upgrade from
// a version without it) or loads the etcd CA, and the client port's server
// certificate and the local client certificate it signs, and sets ec up to
// serve the client port over mutual TLS.
func (s *Server) ensureEtcdTLS(layout config.Layout, ec *etcd.Config) (*pki.CA, error) {
	dir := layout.EtcdTLSDir()
	ca, err := pki.EnsureNamedCA(dir, etcdCAName)
	if err != nil {
		return nil, fmt.Errorf("etcd CA: %w", err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	switch ip := net.ParseIP(s.cfg.EtcdListenAddress); {
	case ip == nil:
	case ip.IsUnspecified():
		// Listening everywhere: clients may come by any of the node's
		// addresses.
		ips = append(ips, hostIPs()...)
	default:
		ips = append(ips, ip)
	}
	certFile, keyFile, err := ca.EnsureServingCert(dir, etcdServerCertName, []string{"localhost"}, ips)
	if err != nil {
		return nil, fmt.Errorf("etcd server certificate: %w", err)
	}
	if _, _, err := ca.EnsureClientCert(dir, etcdClientCertName, etcdClientCN, nil); err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	ec.ClientTLS = &etcd.TLSFiles{CertFile: certFile, KeyFile: keyFile, CAFile: filepath.Join(dir, "ca.crt")}
	return ca, nil
}

// etcdCAExists reports whether the data dir holds an etcd CA already.
func etcdCAExists(layout config.Layout) (bool, error) {
	_, err := os.Stat(filepath.Join(layout.EtcdTLSDir(), "ca.crt"))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("etcd CA: %w", err)
}

// peersOnClusterCA reports whether this server's etcd member authenticates
// its peers with the cluster CA, as members made by older versions do. A
// member that took peers before the etcd CA existed (not a lone server,
// which has no peers to agree with) is marked so on its first start after
// the upgrade, and stays so until a cluster reset: its peers, upgraded or
// not, present certificates from the cluster CA and trust only it. It must
// be called before peerSetup, which marks the data dir as clustered.
func (s *Server) peersOnClusterCA(layout config.Layout, hadEtcdCA bool) (bool, error) {
	marker := layout.EtcdPeersOnClusterCAMarker()
	if _, err := os.Stat(marker); err == nil {
		return true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("etcd peer CA: %w", err)
	}
	if hadEtcdCA || !etcd.MemberExists(layout.EtcdDir()) {
		return false, nil
	}
	if _, err := os.Stat(layout.ClusterMarker()); errors.Is(err, fs.ErrNotExist) {
		return false, nil // it took no peers before
	} else if err != nil {
		return false, fmt.Errorf("etcd peer CA: %w", err)
	}
	if err := markPeersOnClusterCA(layout); err != nil {
		return false, err
	}
	return true, nil
}

func markPeersOnClusterCA(layout config.Layout) error {
	if err := pki.WriteFileAtomic(layout.EtcdPeersOnClusterCAMarker(), []byte("cluster-ca\n"), 0o600); err != nil {
		return fmt.Errorf("remember the etcd peer CA: %w", err)
	}
	return nil
}

func unmarkPeersOnClusterCA(layout config.Layout) error {
	if err := os.Remove(layout.EtcdPeersOnClusterCAMarker()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("etcd peer CA: %w", err)
	}
	return nil
}

// loopbackPeerTLS secures the peer port of a server that takes no peers
// (no --cluster-init): it listens on the etcd listen address only, and
// with TLS from the etcd CA like any member, so that nobody on the machine
// can speak raft to it either.
func (s *Server) loopbackPeerTLS(layout config.Layout, etcdCA *pki.CA, ec *etcd.Config) error {
	dir := layout.EtcdTLSDir()
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	if ip := net.ParseIP(s.cfg.EtcdListenAddress); ip != nil && !ip.IsUnspecified() {
		ips = append(ips, ip)
	}
	certFile, keyFile, err := etcdCA.EnsurePeerCert(dir, etcdPeerCertName, []string{s.cfg.NodeName, "localhost"}, ips)
	if err != nil {
		return fmt.Errorf("etcd peer certificate: %w", err)
	}
	ec.PeerTLS = &etcd.TLSFiles{CertFile: certFile, KeyFile: keyFile, CAFile: filepath.Join(dir, "ca.crt")}
	return nil
}
