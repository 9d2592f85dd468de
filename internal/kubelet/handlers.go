package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"skiff/internal/kubelet/probes"
	"skiff/internal/kubelet/runtime"
)

// probeTarget reaches a container for probes and hooks: exec inside it,
// and dial from inside its pod's network namespace (pods have no routable
// address of their own until the pod network exists).
func (k *Kubelet) probeTarget(id string, sb *runtime.Sandbox) probes.Target {
	return probes.Target{
		Exec: func(ctx context.Context, cmd []string) ([]byte, int, error) {
			var out bytes.Buffer
			code, err := k.rt.Exec(ctx, id, runtime.ExecOptions{Cmd: cmd, Stdout: &out, Stderr: &out})
			return out.Bytes(), code, err
		},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return k.rt.DialInSandbox(ctx, sb, network, addr)
		},
		Host: "127.0.0.1",
	}
}

// runHandler runs a postStart or preStop hook.
func (k *Kubelet) runHandler(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, sb *runtime.Sandbox, h *corev1.LifecycleHandler) error {
	switch {
	case h.Exec != nil:
		var out bytes.Buffer
		code, err := k.rt.Exec(ctx, id, runtime.ExecOptions{Cmd: h.Exec.Command, Stdout: &out, Stderr: &out})
		if err != nil {
			return fmt.Errorf("exec %v: %w", h.Exec.Command, err)
		}
		if code != 0 {
			return fmt.Errorf("command %q exited with %d: %s", strings.Join(h.Exec.Command, " "), code, strings.TrimSpace(out.String()))
		}
		return nil
	case h.HTTPGet != nil:
		timeout := int32(30)
		if dl, ok := ctx.Deadline(); ok {
			timeout = int32(max(time.Until(dl)/time.Second, 1))
		}
		probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: h.HTTPGet}, TimeoutSeconds: timeout}
		if res, msg := probes.Run(ctx, probe, c, k.probeTarget(id, sb)); res != probes.Success {
			return fmt.Errorf("http hook: %s", msg)
		}
		return nil
	case h.Sleep != nil:
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		}
		return nil
	case h.TCPSocket != nil:
		return fmt.Errorf("tcpSocket lifecycle hooks are not supported by Kubernetes either")
	}
	return nil
}
