package storage

import (
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func TestIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrLeaderChanged, true},
		{fmt.Errorf("get /registry/namespaces/default: %w", rpctypes.ErrLeaderChanged), true},
		{rpctypes.ErrGRPCNoLeader, true},
		{fmt.Errorf("txn: %w", rpctypes.ErrTimeoutDueToLeaderFail), true},
		{errors.New("get /x: etcdserver: request timed out"), true},
		{ErrConflict, false},
		{rpctypes.ErrCompacted, false},
		{errors.New("disk on fire"), false},
		{nil, false},
	} {
		if got := IsUnavailable(tc.err); got != tc.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
