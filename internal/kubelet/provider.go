package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"skiff/internal/kubelet/downward"
	"skiff/internal/kubelet/runtime"
	kubeletserver "skiff/internal/kubelet/server"
)

// provider serves the kubelet API (logs, exec, port-forward) from the
// kubelet's pods and the runtime.
type provider struct{ k *Kubelet }

// container returns the pod and the instances of one of its containers.
func (p *provider) container(ctx context.Context, ns, name, container string) (*corev1.Pod, instances, error) {
	pod, w, err := p.k.podByName(ns, name)
	if err != nil {
		return nil, nil, err
	}
	if downward.Container(pod, container) == nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", container, name))
	}
	inst, err := w.instances(ctx)
	return pod, inst, err
}

func (p *provider) LogPath(ns, name, container string, previous bool) (string, func() bool, error) {
	ctx := context.Background()
	pod, inst, err := p.container(ctx, ns, name, container)
	if err != nil {
		return "", nil, err
	}
	c := inst.latest(container)
	if previous {
		c = inst.previous(container)
		if c == nil {
			return "", nil, fmt.Errorf("previous terminated container %q in pod %q not found", container, name)
		}
	}
	if c == nil {
		return "", nil, apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start", container, name))
	}
	id := c.ID
	exited := func() bool {
		st, err := p.k.rt.State(context.Background(), id)
		return err != nil || st.Status == runtime.StatusExited
	}
	return p.k.containerLogPath(pod, container, attemptOf(*c)), exited, nil
}

func (p *provider) Exec(ctx context.Context, ns, name, container string, cmd []string, s kubeletserver.Streams) (int, error) {
	_, inst, err := p.container(ctx, ns, name, container)
	if err != nil {
		return 0, err
	}
	c := inst.latest(container)
	if !running(c) {
		return 0, fmt.Errorf("container %s is not running", container)
	}
	var resize chan runtime.TermSize
	if s.Resize != nil {
		resize = make(chan runtime.TermSize, 1)
		go func() {
			defer close(resize)
			for sz := range s.Resize {
				select {
				case resize <- runtime.TermSize{Width: sz.Width, Height: sz.Height}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	opts := runtime.ExecOptions{Cmd: cmd, Tty: s.Tty, Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr}
	if resize != nil {
		opts.Resize = resize
	}
	return p.k.rt.Exec(ctx, c.ID, opts)
}

func (p *provider) Attach(ctx context.Context, ns, name, container string, s kubeletserver.Streams) error {
	return errors.New("attach is not supported by skiff yet; use exec")
}

func (p *provider) PortForward(ctx context.Context, ns, name string, port int32) (net.Conn, error) {
	pod, _, err := p.k.podByName(ns, name)
	if err != nil {
		return nil, err
	}
	sb, err := p.k.rt.EnsureSandbox(ctx, sandboxSpec(pod))
	if err != nil {
		return nil, err
	}
	return p.k.rt.DialInSandbox(ctx, sb, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
}
