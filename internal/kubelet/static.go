package kubelet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/utils/ptr"

	"skiff/internal/config"
)

// Annotations of static and mirror pods, as Kubernetes names them.
const (
	annotationSource = "kubernetes.io/config.source"
	annotationHash   = "kubernetes.io/config.hash"
	annotationMirror = "kubernetes.io/config.mirror"
)

// runStaticPods runs the pods whose manifests are in the pod-manifests
// folder, with or without an API server, and mirrors them into the API
// when it is reachable.
func (k *Kubelet) runStaticPods(ctx context.Context) {
	dir := config.Layout{DataDir: k.cfg.Agent.DataDir}.PodManifestsDir()
	known := map[types.UID]*corev1.Pod{}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		current := k.readManifests(dir)
		for uid, pod := range current {
			if _, ok := known[uid]; !ok {
				k.log.Info("static pod found", "pod", pod.Namespace+"/"+pod.Name)
				k.workerFor(uid, true).update(pod)
			}
		}
		for uid, pod := range known {
			if _, ok := current[uid]; !ok {
				k.log.Info("static pod removed", "pod", pod.Namespace+"/"+pod.Name)
				k.mu.Lock()
				w := k.workers[uid]
				k.mu.Unlock()
				if w != nil {
					w.gone()
				}
				k.deleteMirror(ctx, pod)
			}
		}
		known = current
		for _, pod := range current {
			k.ensureMirror(ctx, pod)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// readManifests parses every manifest; a bad file is logged and skipped.
func (k *Kubelet) readManifests(dir string) map[types.UID]*corev1.Pod {
	out := map[types.UID]*corev1.Pod{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".json")) {
			continue
		}
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			k.log.Warn("read static pod manifest failed", "file", path, "err", err)
			continue
		}
		pod := &corev1.Pod{}
		if err := utilyaml.Unmarshal(b, pod); err != nil {
			k.log.Warn("static pod manifest is not a valid pod; skipped", "file", path, "err", err)
			continue
		}
		if pod.Name == "" || len(pod.Spec.Containers) == 0 {
			k.log.Warn("static pod manifest needs metadata.name and at least one container; skipped", "file", path)
			continue
		}
		sum := sha256.Sum256(append([]byte(k.nodeName+"\x00"+path+"\x00"), b...))
		hash := hex.EncodeToString(sum[:16])
		pod.UID = types.UID(hash[:8] + "-" + hash[8:12] + "-" + hash[12:16] + "-" + hash[16:20] + "-" + hash[20:32])
		pod.Name = pod.Name + "-" + k.nodeName
		if pod.Namespace == "" {
			pod.Namespace = metav1.NamespaceDefault
		}
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[annotationSource] = "file"
		pod.Annotations[annotationHash] = string(pod.UID)
		pod.Spec.NodeName = k.nodeName
		defaultStaticPod(pod)
		out[pod.UID] = pod
	}
	return out
}

// defaultStaticPod applies the API server's defaults a manifest would have
// got had it been created through the API.
func defaultStaticPod(pod *corev1.Pod) {
	if pod.Spec.RestartPolicy == "" {
		pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if pod.Spec.TerminationGracePeriodSeconds == nil {
		pod.Spec.TerminationGracePeriodSeconds = ptr.To(int64(30))
	}
	if pod.Spec.DNSPolicy == "" {
		pod.Spec.DNSPolicy = corev1.DNSClusterFirst
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			c := &list[i]
			if c.TerminationMessagePath == "" {
				c.TerminationMessagePath = corev1.TerminationMessagePathDefault
			}
			if c.TerminationMessagePolicy == "" {
				c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
			}
			if c.ImagePullPolicy == "" {
				c.ImagePullPolicy = pullPolicy(c)
			}
		}
	}
}

// ensureMirror creates the API's read-only view of a static pod.
func (k *Kubelet) ensureMirror(ctx context.Context, pod *corev1.Pod) {
	pods := k.client.CoreV1().Pods(pod.Namespace)
	existing, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
	if err == nil {
		if existing.Annotations[annotationMirror] == string(pod.UID) && existing.DeletionTimestamp == nil {
			return
		}
		_ = pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0)), Preconditions: &metav1.Preconditions{UID: &existing.UID}})
		return // recreated on the next round
	}
	if !apierrors.IsNotFound(err) {
		return
	}
	mirror := pod.DeepCopy()
	mirror.UID = ""
	mirror.ResourceVersion = ""
	mirror.Annotations[annotationMirror] = string(pod.UID)
	mirror.Status = corev1.PodStatus{}
	if node, err := k.client.CoreV1().Nodes().Get(ctx, k.nodeName, metav1.GetOptions{}); err == nil {
		mirror.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID, Controller: ptr.To(true)}}
	}
	if _, err := pods.Create(ctx, mirror, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		k.log.Warn("create mirror pod failed", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

func (k *Kubelet) deleteMirror(ctx context.Context, pod *corev1.Pod) {
	err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
	if err != nil && !apierrors.IsNotFound(err) {
		k.log.Warn("delete mirror pod failed", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

// updateMirrorStatus copies a static pod's status onto its mirror pod.
func (k *Kubelet) updateMirrorStatus(ctx context.Context, pod *corev1.Pod, st corev1.PodStatus) {
	pods := k.client.CoreV1().Pods(pod.Namespace)
	for attempt := 0; attempt < 3; attempt++ {
		mirror, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil || mirror.Annotations[annotationMirror] != string(pod.UID) {
			return
		}
		mirror.Status = mergeForeign(st, mirror.Status)
		if _, err = pods.UpdateStatus(ctx, mirror, metav1.UpdateOptions{}); err == nil || !apierrors.IsConflict(err) {
			return
		}
	}
}

// adoptOrphans tears down containers of pods that are neither in the API
// nor static: pods deleted while the agent was away.
func (k *Kubelet) adoptOrphans(ctx context.Context, lister corelisters.PodLister) {
	all, err := k.rt.List(ctx)
	if err != nil {
		k.log.Warn("list containers failed; orphans are not cleaned up", "err", err)
		return
	}
	inAPI := map[types.UID]bool{}
	pods, _ := lister.List(labels.Everything())
	for _, p := range pods {
		inAPI[p.UID] = true
	}
	// Pods known from their containers or from local state (a pod whose
	// containers are gone may still hold a sandbox, an address, volumes).
	var uids []types.UID
	for _, c := range all {
		uids = append(uids, types.UID(c.Labels[labelPodUID]))
	}
	for _, p := range k.state.pods() {
		uids = append(uids, p.UID)
	}
	seen := map[types.UID]bool{}
	for _, uid := range uids {
		if uid == "" || inAPI[uid] || seen[uid] {
			continue
		}
		seen[uid] = true
		if p, ok := k.state.pod(uid); ok && p.Annotations[annotationSource] == "file" {
			continue
		}
		k.log.Info("cleaning up a pod deleted while the agent was away", "pod", uid)
		k.workerFor(uid, false).gone()
	}
}
