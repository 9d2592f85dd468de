package apiserver

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// checkNodeSANs refuses what a node's serving certificate must never
// cover, since the cluster CA's signature on it would let the node pose as
// something else to clients that trust that CA: the API server's and
// services' names (kubernetes, kubernetes.default, *.svc, anything in the
// cluster domain) and the service CIDR's addresses, for every caller; and,
// for a node joining with the agent token, the servers' own names and
// advertise addresses and loopback, unspecified and multicast addresses.
//
// The address a request comes from is not required among the node's
// addresses: an agent behind NAT connects from another one. A node that
// asks for addresses none of which is the one it connects from is logged.
func (s *Server) checkNodeSANs(r *http.Request, role JoinRole, req *NodeCertsRequest, ips []net.IP) field.ErrorList {
	var errs field.ErrorList
	agent := role != JoinRoleServer
	var serverIPs []net.IP
	if agent {
		serverIPs = s.serverIPs(r.Context())
	}
	checkName := func(p *field.Path, name string) {
		if why := s.reservedName(name, agent); why != "" {
			errs = append(errs, field.Forbidden(p, name+" "+why))
		}
	}
	checkName(field.NewPath("nodeName"), req.NodeName)
	for i, h := range req.Hostnames {
		checkName(field.NewPath("hostnames").Index(i), h)
	}
	remote := remoteIP(r)
	fromOwn := remote == nil
	for i, ip := range ips {
		p := field.NewPath("addresses").Index(i)
		switch {
		case s.cfg.ServiceCIDR != nil && s.cfg.ServiceCIDR.Contains(ip), s.cfg.ClusterDNS != nil && s.cfg.ClusterDNS.Equal(ip):
			errs = append(errs, field.Forbidden(p, ip.String()+" is a service address (service CIDR "+s.cfg.ServiceCIDR.String()+")"))
		case agent && (ip.IsLoopback() || ip.IsUnspecified() || ip.IsMulticast()):
			errs = append(errs, field.Forbidden(p, ip.String()+" is not an address other machines reach a node at"))
		case agent && slices.ContainsFunc(serverIPs, ip.Equal):
			errs = append(errs, field.Forbidden(p, ip.String()+" is a server's address; only the server token gets certificates for it"))
		}
		if remote != nil && ip.Equal(remote) {
			fromOwn = true
		}
	}
	if agent && !fromOwn && len(errs) == 0 {
		s.log.Info("a node asks for addresses other than the one it connects from (behind NAT?)", "node", req.NodeName, "addresses", req.Addresses, "remote", r.RemoteAddr)
	}
	return errs
}

// reservedName says why name may not be in a node's serving certificate,
// or "" when it may.
func (s *Server) reservedName(name string, agent bool) string {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	domain := strings.ToLower(strings.Trim(s.cfg.ClusterDomain, "."))
	if domain == "" {
		domain = "cluster.local"
	}
	switch {
	case n == "kubernetes", n == "kubernetes.default", n == "svc", strings.HasSuffix(n, ".svc"),
		n == domain, strings.HasSuffix(n, "."+domain):
		return "is a name of the API server or of a service"
	case agent && (n == "localhost" || slices.ContainsFunc(s.cfg.ServerNames, func(sn string) bool { return strings.EqualFold(sn, n) })):
		return "is a server's name; only the server token gets certificates for it"
	}
	return ""
}

// serverIPs are the addresses the servers answer at: this one's and every
// registered server's advertise address (apiserverlease.go).
func (s *Server) serverIPs(ctx context.Context) []net.IP {
	ips := append([]net.IP{s.advertiseIP()}, s.cfg.ServerIPs...)
	if s.cfg.Etcd == nil {
		return ips
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := s.cfg.Etcd.Get(ctx, apiserverLeasePrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		s.log.Warn("list the servers' addresses for a node certificate check", "err", err)
		return ips
	}
	for _, kv := range resp.Kvs {
		if ip := net.ParseIP(strings.TrimPrefix(string(kv.Key), apiserverLeasePrefix)); ip != nil {
			ips = append(ips, ip)
		}
	}
	return ips
}

// remoteIP is the address a request comes from, or nil.
func remoteIP(r *http.Request) net.IP {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return nil
	}
	return net.ParseIP(host)
}
