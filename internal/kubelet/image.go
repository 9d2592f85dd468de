package kubelet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/config"
	"skiff/internal/kubelet/images"
	"skiff/internal/kubelet/runtime"
)

// pullPolicy is the container's policy, or Kubernetes' default for it:
// Always for :latest or untagged images, IfNotPresent otherwise.
func pullPolicy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	ref := c.Image
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return corev1.PullIfNotPresent
	}
	slash := strings.LastIndex(ref, "/")
	colon := strings.LastIndex(ref, ":")
	if colon <= slash || strings.HasSuffix(ref, ":latest") {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// ensureImage makes the container's image present according to its pull
// policy. On failure it returns the waiting reason kubectl shows
// (ErrImagePull, then ImagePullBackOff while backing off, or
// ErrImageNeverPull) and when to try again.
func (k *Kubelet) ensureImage(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (*images.Image, reason, time.Duration) {
	policy := pullPolicy(c)
	img, err := k.images.Lookup(c.Image)
	present := err == nil
	if err != nil && !errors.Is(err, images.ErrNotFound) {
		return nil, reason{"InvalidImageName", fmt.Sprintf("Failed to apply default image tag %q: %v", c.Image, err)}, 30 * time.Second
	}
	switch {
	case policy == corev1.PullNever && !present:
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		k.recorder.Event(pod, corev1.EventTypeWarning, "ErrImageNeverPull", msg)
		return nil, reason{"ErrImageNeverPull", msg}, 10 * time.Second
	case present && policy != corev1.PullAlways:
		k.images.MarkUsed(img.ID)
		return img, reason{}, 0
	}
	key := fmt.Sprintf("pull/%s/%s", pod.UID, c.Image)
	if wait, _ := k.backoff.wait(key, time.Time{}); wait > 0 {
		return nil, reason{"ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q", c.Image)}, wait
	}
	k.recorder.Eventf(pod, corev1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	start := time.Now()
	img, err = k.images.Pull(ctx, c.Image, images.PullOptions{DockerConfigs: k.pullSecrets(ctx, pod)})
	if err != nil {
		k.backoff.next(key)
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
		wait, _ := k.backoff.wait(key, time.Time{})
		return nil, reason{"ErrImagePull", err.Error()}, wait
	}
	k.backoff.reset(key)
	k.recorder.Eventf(pod, corev1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s", c.Image, time.Since(start).Round(time.Millisecond))
	return img, reason{}, 0
}

// pullSecrets returns the docker configs of the pod's imagePullSecrets;
// a missing secret is skipped, as the kubelet does.
func (k *Kubelet) pullSecrets(ctx context.Context, pod *corev1.Pod) [][]byte {
	var out [][]byte
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := k.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			k.log.Warn("image pull secret not readable; pulling without it", "pod", podRef(pod, pod.UID), "secret", ref.Name, "err", err)
			continue
		}
		for _, key := range []string{corev1.DockerConfigJsonKey, corev1.DockerConfigKey} {
			if b, ok := s.Data[key]; ok {
				out = append(out, b)
			}
		}
	}
	return out
}

// runImageGC removes unused images when the image filesystem fills up,
// and imports tarballs dropped into the air-gap folder.
func (k *Kubelet) runImageGC(ctx context.Context) {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	gcEvery := 10 // ticks: 5 minutes
	importDir := config.Layout{DataDir: k.cfg.Agent.DataDir}.ImageImportDir()
	for i := 0; ; i++ {
		if imported, err := k.images.ImportDir(ctx, importDir); err != nil {
			k.log.Warn("import of image tarballs failed", "dir", importDir, "err", err)
		} else if len(imported) > 0 {
			k.log.Info("imported image tarballs", "dir", importDir, "images", len(imported))
		}
		if i%gcEvery == gcEvery-1 {
			inUse := k.imagesInUse(ctx)
			freed, err := k.images.GC(ctx, func(id string) bool { return inUse[id] }, k.cfg.Agent.ImageGCHighPercent, k.cfg.Agent.ImageGCLowPercent)
			if err != nil {
				k.log.Warn("image garbage collection failed", "err", err)
			} else if freed > 0 {
				k.log.Info("image garbage collection freed space", "bytes", freed)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (k *Kubelet) imagesInUse(ctx context.Context) map[string]bool {
	inUse, err := ImagesInUse(ctx, k.rt)
	if err != nil {
		k.log.Warn("list containers failed", "err", err)
	}
	return inUse
}

// ImagesInUse returns the IDs of the images the runtime's containers (running
// or exited, kept for their logs) were created from.
func ImagesInUse(ctx context.Context, rt *runtime.Runtime) (map[string]bool, error) {
	inUse := map[string]bool{}
	all, err := rt.List(ctx)
	if err != nil {
		return inUse, err
	}
	for _, c := range all {
		inUse[c.Labels[labelImageID]] = true
	}
	return inUse, nil
}
