package kubelet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"skiff/internal/kubelet/downward"
	"skiff/internal/kubelet/images"
	"skiff/internal/kubelet/runtime"
	"skiff/internal/kubelet/volumes"
)

// podEnv is what every container of a pod shares during one sync.
type podEnv struct {
	pod     *corev1.Pod
	sandbox *runtime.Sandbox
	volumes map[string]volumes.Volume
	podIP   net.IP
}

// CFS period and the cpu-shares conversion Kubernetes uses.
const (
	cfsPeriod      = 100000
	minShares      = 2
	sharesPerCPU   = 1024
	minQuotaPeriod = 1000
)

// newContainerID is 32 hex digits: 8 naming the pod (podPrefix), so the
// kubelet reads only one pod's containers when it syncs that pod, then 24
// random ones.
func newContainerID(podUID types.UID) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return podPrefix(podUID) + hex.EncodeToString(b)
}

// podPrefix is the start of every container ID of a pod.
func podPrefix(podUID types.UID) string {
	sum := sha256.Sum256([]byte(podUID))
	return hex.EncodeToString(sum[:4])
}

// podLogDir is /var/log/pods/<ns>_<name>_<uid>, as Kubernetes lays it out.
func (k *Kubelet) podLogDir(pod *corev1.Pod) string {
	return filepath.Join(k.cfg.Agent.PodLogDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

func (k *Kubelet) containerLogPath(pod *corev1.Pod, container string, attempt int) string {
	return filepath.Join(k.podLogDir(pod), container, fmt.Sprintf("%d.log", attempt))
}

// containerSpec turns a pod's container into what the runtime runs:
// command and args over the image's entrypoint, environment, user, security
// context, resources and mounts.
func (k *Kubelet) containerSpec(ctx context.Context, env podEnv, c *corev1.Container, img *images.Image, attempt int, init bool) (runtime.ContainerSpec, error) {
	pod := env.pod
	envList, envMap, err := k.containerEnv(ctx, pod, c, img)
	if err != nil {
		return runtime.ContainerSpec{}, err
	}
	args := commandLine(c, img, envMap)
	if len(args) == 0 {
		return runtime.ContainerSpec{}, fmt.Errorf("no command specified for container %q and the image has no entrypoint or cmd", c.Name)
	}
	uid, gid, err := containerUser(pod, c, img)
	if err != nil {
		return runtime.ContainerSpec{}, err
	}
	mounts, err := volumes.ContainerMounts(pod, c, env.volumes, envMap)
	if err != nil {
		return runtime.ContainerSpec{}, err
	}
	id := newContainerID(pod.UID)
	spec := runtime.ContainerSpec{
		ID:     id,
		PodUID: string(pod.UID),
		Labels: map[string]string{
			labelPodUID:       string(pod.UID),
			labelPodNamespace: pod.Namespace,
			labelPodName:      pod.Name,
			labelContainer:    c.Name,
			labelAttempt:      strconv.Itoa(attempt),
			labelImage:        c.Image,
			labelImageID:      img.ID,
		},
		Sandbox:  env.sandbox,
		Layers:   img.Layers,
		Args:     args,
		Env:      envList,
		Cwd:      firstNonEmpty(c.WorkingDir, img.Config.WorkingDir, "/"),
		UID:      uid,
		GID:      gid,
		Hostname: sandboxSpec(pod).Hostname,
		LogPath:  k.containerLogPath(pod, c.Name, attempt),
	}
	if len(img.RepoDigests) > 0 {
		spec.Labels[labelImageRef] = img.RepoDigests[0]
	}
	if init {
		spec.Labels[labelInit] = "true"
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		spec.AdditionalGIDs = append(spec.AdditionalGIDs, toUint32s(psc.SupplementalGroups)...)
		if psc.FSGroup != nil {
			spec.AdditionalGIDs = append(spec.AdditionalGIDs, uint32(*psc.FSGroup))
		}
	}
	if sc := c.SecurityContext; sc != nil {
		spec.Privileged = sc.Privileged != nil && *sc.Privileged
		spec.ReadOnlyRootfs = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		spec.NoNewPrivileges = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
		if sc.Capabilities != nil {
			for _, cp := range sc.Capabilities.Add {
				spec.CapAdd = append(spec.CapAdd, string(cp))
			}
			for _, cp := range sc.Capabilities.Drop {
				spec.CapDrop = append(spec.CapDrop, string(cp))
			}
		}
	}
	spec.Resources = containerResources(c)
	dnsMounts, err := k.dnsMounts(pod, env.podIP)
	if err != nil {
		return runtime.ContainerSpec{}, fmt.Errorf("write the pod's resolv.conf and hosts: %w", err)
	}
	mounts = append(mounts, dnsMountsToVolumes(dnsMounts, mounts)...)
	for _, m := range mounts {
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: m.Source, Destination: m.Destination, ReadOnly: m.ReadOnly})
	}
	// The termination message file: a host file per instance, read back
	// into the terminated state's message.
	if p := c.TerminationMessagePath; p != "" && !hasMountAt(spec.Mounts, p) {
		host := filepath.Join(k.cfg.Agent.DataDir, "agent", "pods", string(pod.UID), "containers", c.Name, fmt.Sprintf("%d-termination-log", attempt))
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err == nil {
			if f, err := os.OpenFile(host, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o666); err == nil {
				f.Close()
				_ = os.Chmod(host, 0o666)
				spec.Mounts = append(spec.Mounts, runtime.Mount{Source: host, Destination: p})
				spec.Labels[labelTermMsgPath] = host
			}
		}
	}
	return spec, nil
}

func hasMountAt(ms []runtime.Mount, dest string) bool {
	for _, m := range ms {
		if filepath.Clean(m.Destination) == filepath.Clean(dest) {
			return true
		}
	}
	return false
}

func toUint32s(in []int64) []uint32 {
	out := make([]uint32, 0, len(in))
	for _, v := range in {
		out = append(out, uint32(v))
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// commandLine is Kubernetes' rule: command replaces the entrypoint (and
// drops the image's cmd), args replace cmd; $(VAR) references expand.
func commandLine(c *corev1.Container, img *images.Image, env map[string]string) []string {
	var out []string
	switch {
	case len(c.Command) > 0:
		out = append(out, c.Command...)
		out = append(out, c.Args...)
	case len(c.Args) > 0:
		out = append(append(out, img.Config.Entrypoint...), c.Args...)
	default:
		out = append(append(out, img.Config.Entrypoint...), img.Config.Cmd...)
	}
	if len(c.Command) > 0 || len(c.Args) > 0 {
		for i := range out {
			out[i] = downward.Expand(out[i], env)
		}
	}
	return out
}

// containerResources maps requests and limits onto cgroup settings the
// way the kubelet does: shares from the cpu request, a CFS quota from the
// cpu limit, the memory limit as is.
func containerResources(c *corev1.Container) runtime.Resources {
	var r runtime.Resources
	cpuReq := c.Resources.Requests.Cpu().MilliValue()
	if cpuReq == 0 {
		cpuReq = c.Resources.Limits.Cpu().MilliValue()
	}
	r.CPUShares = max(uint64(cpuReq*sharesPerCPU/1000), minShares)
	if lim := c.Resources.Limits.Cpu().MilliValue(); lim > 0 {
		r.CPUPeriod = cfsPeriod
		r.CPUQuota = max(lim*cfsPeriod/1000, minQuotaPeriod)
	}
	if mem := c.Resources.Limits.Memory().Value(); mem > 0 {
		r.MemoryLimit = mem
	}
	return r
}

// containerUser resolves the user the container runs as: the security
// context's runAsUser/runAsGroup over the image's USER, enforcing
// runAsNonRoot as Kubernetes words it.
func containerUser(pod *corev1.Pod, c *corev1.Container, img *images.Image) (uint32, uint32, error) {
	var runAsUser, runAsGroup *int64
	var nonRoot *bool
	if psc := pod.Spec.SecurityContext; psc != nil {
		runAsUser, runAsGroup, nonRoot = psc.RunAsUser, psc.RunAsGroup, psc.RunAsNonRoot
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			runAsUser = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			runAsGroup = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			nonRoot = sc.RunAsNonRoot
		}
	}
	var uid, gid uint32
	userSpec, groupSpec, _ := strings.Cut(img.Config.User, ":")
	if runAsUser != nil {
		uid = uint32(*runAsUser)
	} else if userSpec != "" {
		n, err := strconv.ParseUint(userSpec, 10, 32)
		if err != nil {
			if nonRoot != nil && *nonRoot {
				return 0, 0, fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", userSpec, pod.Namespace+"/"+pod.Name, c.Name)
			}
			u, g, ok := lookupPasswd(img.Layers, userSpec)
			if !ok {
				return 0, 0, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userSpec)
			}
			uid, gid = u, g
		} else {
			uid = uint32(n)
			if u, g, ok := lookupPasswdUID(img.Layers, uid); ok && u == uid {
				gid = g
			}
		}
	}
	if nonRoot != nil && *nonRoot && uid == 0 {
		return 0, 0, fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", pod.Namespace+"/"+pod.Name, c.Name)
	}
	if runAsGroup != nil {
		gid = uint32(*runAsGroup)
	} else if groupSpec != "" {
		if n, err := strconv.ParseUint(groupSpec, 10, 32); err == nil {
			gid = uint32(n)
		}
	}
	return uid, gid, nil
}

// passwdLines reads /etc/passwd from the topmost layer that has one.
func passwdLines(layers []string) []string {
	for i := len(layers) - 1; i >= 0; i-- {
		b, err := os.ReadFile(filepath.Join(layers[i], "etc", "passwd"))
		if err == nil {
			return strings.Split(string(b), "\n")
		}
	}
	return nil
}

func lookupPasswd(layers []string, name string) (uint32, uint32, bool) {
	for _, line := range passwdLines(layers) {
		f := strings.Split(line, ":")
		if len(f) >= 4 && f[0] == name {
			u, err1 := strconv.ParseUint(f[2], 10, 32)
			g, err2 := strconv.ParseUint(f[3], 10, 32)
			if err1 == nil && err2 == nil {
				return uint32(u), uint32(g), true
			}
		}
	}
	return 0, 0, false
}

func lookupPasswdUID(layers []string, uid uint32) (uint32, uint32, bool) {
	for _, line := range passwdLines(layers) {
		f := strings.Split(line, ":")
		if len(f) >= 4 && f[2] == strconv.FormatUint(uint64(uid), 10) {
			g, err := strconv.ParseUint(f[3], 10, 32)
			if err == nil {
				return uid, uint32(g), true
			}
		}
	}
	return 0, 0, false
}

// dnsMountsToVolumes keeps a container's own mounts of /etc/hosts or
// /etc/resolv.conf (from its volumes) over the generated ones.
func dnsMountsToVolumes(generated []runtime.Mount, own []volumes.Mount) []volumes.Mount {
	var out []volumes.Mount
	for _, g := range generated {
		taken := false
		for _, m := range own {
			if filepath.Clean(m.Destination) == g.Destination {
				taken = true
			}
		}
		if !taken {
			out = append(out, volumes.Mount{Source: g.Source, Destination: g.Destination, ReadOnly: g.ReadOnly})
		}
	}
	return out
}
