// Package config holds the configuration structs that skiff's components are
// built from, their defaults, and the layout of the data directory. Flags are
// converted into these structs once, in internal/cli; components never see flags.
package config

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// Defaults, the same as k3s's so that homelab users find what they expect.
const (
	DefaultDataDir        = "/var/lib/skiff"
	DefaultKubeconfigPath = "/etc/skiff/skiff.yaml"
	DefaultHTTPSPort      = 6443
	DefaultEtcdClientPort = 2379
	DefaultEtcdPeerPort   = 2380
	DefaultClusterCIDR    = "10.42.0.0/16"
	DefaultServiceCIDR    = "10.43.0.0/16"
	DefaultClusterDNS     = "10.43.0.10"
	DefaultClusterDomain  = "cluster.local"
	DefaultNodePortRange  = "30000-32767"
)

// Server is the configuration of `skiff server`.
type Server struct {
	DataDir string
	// BindAddress is the address the API server listens on; empty means all.
	BindAddress string
	HTTPSPort   int
	// AdvertiseIPs are put into the serving certificate; the first is the
	// address other nodes use to reach this server.
	AdvertiseIPs []net.IP
	TLSSANs      []string
	// KubeconfigPath is where the admin kubeconfig is written; empty skips it.
	KubeconfigPath string
	KubeconfigMode uint32

	EtcdClientPort int
	EtcdPeerPort   int
	// EtcdListenAddress is where etcd listens; loopback by default.
	EtcdListenAddress string
	// EtcdQuotaBytes is the etcd backend quota.
	EtcdQuotaBytes int64
	// EtcdCompactionRetention is etcd's periodic auto-compaction window, as
	// etcd's flag takes it ("5m").
	EtcdCompactionRetention string
	// EtcdSnapshots configures scheduled snapshots and cluster reset.
	EtcdSnapshots EtcdSnapshots
	// ClusterInit starts a cluster other servers can join: etcd peers
	// listen on the advertise address, over TLS.
	ClusterInit bool
	// JoinURL and Token make this server join the cluster of the server at
	// JoinURL as another etcd member (ignored once it has its own data).
	JoinURL string
	Token   string
	// EncryptionProviderConfig is an EncryptionConfiguration file the user
	// brings; empty: skiff's own, which encrypts Secrets with a key kept in
	// the cluster's bootstrap data.
	EncryptionProviderConfig string

	ServiceCIDR   *net.IPNet
	ClusterCIDR   *net.IPNet
	NodePortRange PortRange
	ClusterDomain string
	// ClusterDNS is the cluster DNS service's address, answered on every node.
	ClusterDNS net.IP
	// EventTTL is how long events are kept.
	EventTTL time.Duration

	DisableAgent bool
	// DisableScheduler and DisableControllerManager keep those control
	// loops off this server (it still serves the API and joins elections
	// for whatever is left on).
	DisableScheduler         bool
	DisableControllerManager bool
	// LeaderElectTTL is the control-plane leader's lease TTL: a dead leader
	// is replaced within it.
	LeaderElectTTL time.Duration
	// NodeName names this server in elections (and, later, as a node).
	NodeName string
	// AuthorizationMode is AuthorizationNodeRBAC (the default:
	// service-account tokens, impersonation, the node authorizer, RBAC and
	// their admission) or AuthorizationAlwaysAllow (every authenticated
	// caller may do everything, the first wave's behaviour).
	AuthorizationMode string
	// Controllers holds the controllers' own settings.
	Controllers Controllers

	Debug bool
}

// Authorization modes of a server.
const (
	AuthorizationAlwaysAllow = "AlwaysAllow"
	AuthorizationNodeRBAC    = "Node,RBAC"
)

// Controllers are the settings of the control loops.
type Controllers struct {
	// NodeMonitorGracePeriod is how long a node may go without renewing
	// its lease before it is marked not ready.
	NodeMonitorGracePeriod time.Duration
	// DefaultNotReadyTolerationSeconds is the toleration added to pods for
	// the not-ready and unreachable taints.
	DefaultNotReadyTolerationSeconds int64
	// TerminatedPodGCThreshold is how many terminated pods are kept.
	TerminatedPodGCThreshold int
}

// EtcdSnapshots configures etcd snapshots and restoring one.
type EtcdSnapshots struct {
	// Disable turns scheduled snapshots off.
	Disable bool
	// Schedule is a 5-field cron expression (or "@every 30m").
	Schedule string
	// Retention is how many scheduled snapshots are kept.
	Retention int
	// Dir overrides where snapshots are kept; empty means
	// Layout.SnapshotDir.
	Dir string
	// ClusterReset makes this server the only member of its etcd cluster:
	// with RestorePath, from that snapshot; without it, keeping its data.
	ClusterReset bool
	RestorePath  string
}

// Defaults of etcd snapshots, those of k3s.
const (
	DefaultEtcdSnapshotSchedule  = "0 */12 * * *"
	DefaultEtcdSnapshotRetention = 5
)

// PortRange is an inclusive range of ports (Base, Size), as Kubernetes'
// --service-node-port-range takes it.
type PortRange = utilnet.PortRange

// ParsePortRange parses "30000-32767" (or Kubernetes' "30000+2767").
func ParsePortRange(s string) (PortRange, error) {
	r, err := utilnet.ParsePortRange(s)
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: want LOW-HIGH, e.g. %s: %w", s, DefaultNodePortRange, err)
	}
	if r.Base < 1 || r.Size == 0 {
		return PortRange{}, fmt.Errorf("port range %q: ports must be 1-65535 and LOW <= HIGH", s)
	}
	return *r, nil
}

// ParseCIDR parses a CIDR flag, naming the flag in its error.
func ParseCIDR(flag, s string) (*net.IPNet, error) {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, fmt.Errorf("--%s %q: not a CIDR (example: %s)", flag, s, DefaultServiceCIDR)
	}
	return n, nil
}

// DefaultServer returns a server configuration with every default filled in.
func DefaultServer() Server {
	_, svc, _ := net.ParseCIDR(DefaultServiceCIDR)
	_, cluster, _ := net.ParseCIDR(DefaultClusterCIDR)
	npr, _ := ParsePortRange(DefaultNodePortRange)
	return Server{
		DataDir:                 DefaultDataDir,
		HTTPSPort:               DefaultHTTPSPort,
		KubeconfigPath:          DefaultKubeconfigPath,
		KubeconfigMode:          0o600,
		EtcdClientPort:          DefaultEtcdClientPort,
		EtcdPeerPort:            DefaultEtcdPeerPort,
		EtcdListenAddress:       "127.0.0.1",
		EtcdQuotaBytes:          2 << 30,
		EtcdCompactionRetention: "5m",
		ServiceCIDR:             svc,
		ClusterCIDR:             cluster,
		NodePortRange:           npr,
		ClusterDomain:           DefaultClusterDomain,
		ClusterDNS:              net.ParseIP(DefaultClusterDNS),
		// A killed leader is replaced after its lease expires: the TTL plus
		// about 3 s when it led etcd too (etcd elects a leader, which then
		// extends every lease), so 6 s keeps failover under 10 s. A leader
		// that misses renewals for 4 s steps down.
		LeaderElectTTL: 6 * time.Second,
		// Upstream's default for a cluster with nodes: every caller gets
		// what RBAC (and, for nodes, the node authorizer) grants.
		AuthorizationMode: AuthorizationNodeRBAC,
		EventTTL:          time.Hour,
		Controllers: Controllers{
			NodeMonitorGracePeriod:           40 * time.Second,
			DefaultNotReadyTolerationSeconds: 300,
			TerminatedPodGCThreshold:         12500,
		},
		EtcdSnapshots: EtcdSnapshots{
			Schedule:  DefaultEtcdSnapshotSchedule,
			Retention: DefaultEtcdSnapshotRetention,
		},
	}
}

// Layout names the files and folders under a data directory. Every path a
// node uses derives from its data dir, so several nodes can share a machine.
type Layout struct{ DataDir string }

// ServerDir holds the server's state: TLS material, tokens, etcd.
func (l Layout) ServerDir() string { return filepath.Join(l.DataDir, "server") }

// TLSDir holds the cluster CA and the server's certificates.
func (l Layout) TLSDir() string { return filepath.Join(l.ServerDir(), "tls") }

// EtcdTLSDir holds the etcd CA, which signs only servers' etcd
// certificates, and those certificates: server (the client port), peer
// and client (what local tools present to the client port).
func (l Layout) EtcdTLSDir() string { return filepath.Join(l.TLSDir(), "etcd") }

// EtcdPeersOnClusterCAMarker exists while this server's etcd member still
// authenticates its peers with the cluster CA, as servers of older versions
// set them up: members of one cluster must agree on the peer CA, so the
// member keeps it until the cluster moves to the etcd CA (see README).
func (l Layout) EtcdPeersOnClusterCAMarker() string {
	return filepath.Join(l.ServerDir(), "db", "etcd-peers-on-cluster-ca")
}

// EtcdDir is the embedded etcd's data directory.
func (l Layout) EtcdDir() string { return filepath.Join(l.ServerDir(), "db", "etcd") }

// SnapshotDir is where etcd snapshots are kept by default.
func (l Layout) SnapshotDir() string { return filepath.Join(l.ServerDir(), "db", "snapshots") }

// ClusterMarker exists once this server's etcd takes peers over TLS on the
// node's address (--cluster-init or a join); it keeps it so on restarts.
func (l Layout) ClusterMarker() string { return filepath.Join(l.ServerDir(), "db", "cluster") }

// EtcdMemberNameFile holds this server's etcd member name, unique in the
// cluster even where servers share a host name.
func (l Layout) EtcdMemberNameFile() string { return filepath.Join(l.ServerDir(), "db", "member-name") }

// TokenFile holds the server token, which joins servers and agents.
func (l Layout) TokenFile() string { return filepath.Join(l.ServerDir(), "token") }

// AgentTokenFile holds the agent token, which joins agents only (mode 0600).
func (l Layout) AgentTokenFile() string { return filepath.Join(l.ServerDir(), "agent-token") }

// ServiceAccountKeyFile is the key that signs service-account tokens, the
// same on every server of a cluster.
func (l Layout) ServiceAccountKeyFile() string {
	return filepath.Join(l.TLSDir(), "service-account.key")
}

// EncryptionConfigFile is this server's copy of the cluster's encryption
// configuration (keys included), kept so the server knows its keys before
// etcd is up.
func (l Layout) EncryptionConfigFile() string {
	return filepath.Join(l.ServerDir(), "cred", "encryption-config.yaml")
}

// AdminKubeconfig is a copy of the admin kubeconfig kept in the data dir,
// so `skiff kubeconfig` works even when --write-kubeconfig was elsewhere.
func (l Layout) AdminKubeconfig() string { return filepath.Join(l.ServerDir(), "cred", "admin.yaml") }

// AgentDir holds the agent's state: certificates, images, containers, pods.
func (l Layout) AgentDir() string { return filepath.Join(l.DataDir, "agent") }

// NodeIDFile holds the suffix --with-node-id appends to the node name.
func (l Layout) NodeIDFile() string { return filepath.Join(l.AgentDir(), "node-id") }

// ImagesDir is the image store: unpacked layers and their metadata.
func (l Layout) ImagesDir() string { return filepath.Join(l.AgentDir(), "images") }

// ImageImportDir is the air-gap folder: tarballs dropped here are imported once.
func (l Layout) ImageImportDir() string { return filepath.Join(l.ImagesDir(), "import") }

// ContainersDir holds the runtime's container and sandbox state.
func (l Layout) ContainersDir() string { return filepath.Join(l.AgentDir(), "containers") }

// PodsDir holds each pod's volumes.
func (l Layout) PodsDir() string { return filepath.Join(l.AgentDir(), "pods") }

// PodManifestsDir holds static pod manifests, run without the API server.
func (l Layout) PodManifestsDir() string { return filepath.Join(l.AgentDir(), "pod-manifests") }

// AgentStateFile is the kubelet's bbolt database of the pods it runs.
func (l Layout) AgentStateFile() string { return filepath.Join(l.AgentDir(), "kubelet.db") }

// LocalCopiesDir holds sealed copies of the ConfigMaps and Secrets the
// node's pods mount, and the node-local key that seals them: what the node
// needs to start its pods again while no server answers.
func (l Layout) LocalCopiesDir() string { return filepath.Join(l.AgentDir(), "local-copies") }

// LastKnownDir holds the Services, EndpointSlices and Nodes last listed,
// which the node's service proxy and DNS serve while no server answers.
func (l Layout) LastKnownDir() string { return filepath.Join(l.AgentDir(), "last-known") }

// LabelNodeLocalDNS marks the cluster DNS service (kube-system/kube-dns):
// its address is answered by every node's agent itself, so the service
// proxy leaves it alone.
const LabelNodeLocalDNS = "skiff.io/node-local-dns"

// LabelControlPlane marks a server's node; the leader looks for it to
// tell servers' nodes (which have etcd members) from agents'.
const LabelControlPlane = "node-role.kubernetes.io/control-plane"

// Defaults of the agent.
const (
	DefaultKubeletPort    = 10250
	DefaultPodLogDir      = "/var/log/pods"
	DefaultCgroupParent   = "/skiff"
	DefaultRegistriesFile = "/etc/skiff/registries.yaml"
	DefaultMaxPods        = 110
	DefaultPodNetwork     = "vxlan"
)

// Agent is the configuration of the agent (`skiff agent`, or the agent a
// server runs on its own node).
type Agent struct {
	DataDir string
	// ServerURL and Token join the cluster; a server's own agent gets them
	// from the server it runs in.
	ServerURL string
	Token     string

	NodeName   string
	NodeIP     net.IP
	NodeLabels map[string]string
	// NodeAnnotations are set on the Node when it registers (a server's
	// node names its etcd member).
	NodeAnnotations map[string]string

	// KubeletAddress and KubeletPort are where the kubelet API listens.
	KubeletAddress string
	KubeletPort    int
	PodLogDir      string
	CgroupParent   string
	RegistriesFile string
	MaxPods        int
	// ImageGCHighPercent and ImageGCLowPercent bound the disk usage of the
	// image store's filesystem: above high, unused images are removed until
	// usage is below low.
	ImageGCHighPercent int
	ImageGCLowPercent  int

	ClusterDNS    net.IP
	ClusterDomain string
	ClusterCIDR   *net.IPNet
	ServiceCIDR   *net.IPNet
	// PodNetwork is how pods reach other nodes: "vxlan" or "host-gw";
	// "none" keeps pods on loopback only.
	PodNetwork string

	// NodeStatusReportInterval is how often full node status is written when
	// nothing changed; the lease is renewed every NodeLeaseRenewInterval.
	NodeStatusReportInterval time.Duration
	NodeLeaseRenewInterval   time.Duration
	// SyncInterval is how often every pod is re-synced even without events.
	SyncInterval time.Duration
	// OnRegistered, when set, is called once the node is registered (the
	// CLI tells systemd the agent is ready).
	OnRegistered func()

	Debug bool
}

// DefaultAgent returns an agent configuration with every default filled in.
func DefaultAgent() Agent {
	_, svc, _ := net.ParseCIDR(DefaultServiceCIDR)
	_, cluster, _ := net.ParseCIDR(DefaultClusterCIDR)
	return Agent{
		ClusterCIDR:              cluster,
		ServiceCIDR:              svc,
		PodNetwork:               DefaultPodNetwork,
		DataDir:                  DefaultDataDir,
		KubeletPort:              DefaultKubeletPort,
		PodLogDir:                DefaultPodLogDir,
		CgroupParent:             DefaultCgroupParent,
		RegistriesFile:           DefaultRegistriesFile,
		MaxPods:                  DefaultMaxPods,
		ImageGCHighPercent:       85,
		ImageGCLowPercent:        80,
		ClusterDNS:               net.ParseIP(DefaultClusterDNS),
		ClusterDomain:            DefaultClusterDomain,
		NodeStatusReportInterval: 5 * time.Minute,
		NodeLeaseRenewInterval:   10 * time.Second,
		SyncInterval:             10 * time.Second,
	}
}
