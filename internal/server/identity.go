package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"skiff/internal/config"
	"skiff/internal/etcd"
	"skiff/internal/identity"
	"skiff/internal/pki"
)

// AnnotationEtcdMember annotates a server's Node with the name of its etcd
// member, so that deleting the Node removes that member.
const AnnotationEtcdMember = "skiff.io/etcd-member"

// ensureMemberName returns this server's etcd member name, kept in the data
// dir: the node name and a random suffix, so that servers sharing a host
// name (cloned VMs, Raspberry Pi images) are distinct members. A server
// that has etcd data from before the name was kept goes on with the name
// it had, its node name.
func ensureMemberName(layout config.Layout, nodeName string) (string, error) {
	file := layout.EtcdMemberNameFile()
	if etcd.MemberExists(layout.EtcdDir()) {
		if name, err := readName(file); err != nil || name != "" {
			return name, err
		}
		// Data from an older skiff: its member is named after the node.
		return nodeName, writeName(file, nodeName)
	}
	if name, err := readName(file); err != nil || name != "" {
		// Kept from an earlier attempt to join or start: the same name
		// lets the cluster replace the member that attempt left behind.
		return name, err
	}
	suffix, err := identity.NewSuffix()
	if err != nil {
		return "", err
	}
	name := nodeName + "-" + suffix
	return name, writeName(file, name)
}

// EtcdMemberName is this server's etcd member name; it is known once Run
// has started etcd (after Ready is closed).
func (s *Server) EtcdMemberName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memberName
}

// defaultAdvertiseIP is the address other nodes reach this server at when
// no --advertise-address is given: the default route's interface address,
// never the cluster DNS address the agent puts on lo, a service or pod
// address, or loopback.
func (s *Server) defaultAdvertiseIP() net.IP {
	if ip := identity.DefaultAddress(s.cfg.ServiceCIDR, s.cfg.ClusterCIDR); ip != nil {
		return ip
	}
	return net.IPv4(127, 0, 0, 1)
}

// readName reads a kept name; "" when there is none yet.
func readName(file string) (string, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("etcd member name: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeName(file, name string) error {
	if err := pki.WriteFileAtomic(file, []byte(name+"\n"), 0o600); err != nil {
		return fmt.Errorf("keep the etcd member name: %w", err)
	}
	return nil
}
