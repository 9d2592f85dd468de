package dns

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// freebind lets the server bind the cluster DNS address before the agent
// has put it on the skiff-dns interface (or while it is re-created), so
// start-up order between the two does not matter.
func freebind(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if network == "udp6" || network == "tcp6" {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func listenPacket(ctx context.Context, addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: freebind}
	return lc.ListenPacket(ctx, "udp", addr)
}

func listenStream(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: freebind}
	return lc.Listen(ctx, "tcp", addr)
}
