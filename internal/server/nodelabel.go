package server

import (
	"context"
	"encoding/json"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/config"
)

// labelOwnNode keeps node-role.kubernetes.io/control-plane on this
// server's own Node until ctx ends. The server sets it, not its kubelet:
// NodeRestriction forbids a node to give itself a role, as upstream, so
// that a stolen node credential cannot make its node a server in the
// leader's eyes. A node that is deleted and registers again gets it again.
func labelOwnNode(ctx context.Context, client kubernetes.Interface, nodeName string, log *slog.Logger) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", nodeName).String()
		}))
	inf := factory.Core().V1().Nodes().Informer()
	ensure := func(obj any) {
		n, ok := obj.(*corev1.Node)
		if !ok || n.Name != nodeName || n.Labels[config.LabelControlPlane] != "" {
			return
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{config.LabelControlPlane: "true"}}})
		if _, err := client.CoreV1().Nodes().Patch(ctx, nodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && ctx.Err() == nil {
			// The next update of the Node (its status every few
			// seconds) tries again.
			log.Warn("label this server's node", "node", nodeName, "err", err)
			return
		}
		log.Info("labelled this server's node", "node", nodeName, "label", config.LabelControlPlane)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    ensure,
		UpdateFunc: func(_, obj any) { ensure(obj) },
	}); err != nil {
		log.Error("watch this server's node", "err", err)
		return
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}
