package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/types"
)

// Member is one member of the etcd cluster.
type Member struct {
	ID   uint64
	Name string // empty until the member has started
	// PeerURLs are where the other members reach it.
	PeerURLs []string
	Learner  bool
}

// InitialCluster formats members as etcd's initial-cluster setting, naming
// the member with peerURL (which has not started, so has no name yet) name.
func InitialCluster(members []Member, name, peerURL string) string {
	var parts []string
	for _, m := range members {
		n := m.Name
		if slices.Contains(m.PeerURLs, peerURL) {
			n = name
		}
		if n == "" {
			continue // another member that has not started yet
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

// ID is this member's ID.
func (e *Etcd) ID() uint64 { return uint64(e.etcd.Server.MemberID()) }

// IsLearner reports whether this member is a learner that has not been
// promoted yet.
func (e *Etcd) IsLearner() bool { return e.etcd.Server.IsLearner() }

// PeerURL is the URL this member advertises to its peers.
func (e *Etcd) PeerURL() string { return e.peerURL }

// CheckQuorum reports whether this member is part of a working cluster:
// it sees a raft leader only while a majority of members can reach each
// other and it among them. A member cut off from the majority loses its
// leader within an election timeout (etcd's pre-vote and check-quorum).
func (e *Etcd) CheckQuorum() error {
	if e.etcd.Server.Leader() == types.ID(0) {
		return errors.New("etcd has no leader: this member cannot reach a majority of the cluster")
	}
	return nil
}

// Members lists the cluster's members.
func (e *Etcd) Members(ctx context.Context) ([]Member, error) {
	resp, err := e.client.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcd: list members: %w", err)
	}
	return members(resp.Members), nil
}

func members(in []*etcdserverpb.Member) []Member {
	out := make([]Member, 0, len(in))
	for _, m := range in {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.IsLearner})
	}
	return out
}

// ErrVotingMember is AddLearner's refusal to replace a voting member.
var ErrVotingMember = errors.New("etcd: a voting member has this name or peer URL")

// AddLearner adds a member that will join with name and peerURL, as a
// learner: it does not vote, so it cannot cost the cluster its quorum while
// it catches up. A learner left over from an earlier attempt of the same
// server (same name or peer URL) is removed first: the server joining has
// no data, so that member can never come back. A voting member is never
// removed here (ErrVotingMember): that a joining server claims its name or
// address proves nothing, and removing it could cost the cluster its
// quorum; an admin removes a dead server by deleting its node. It returns
// the members to start the new one with.
func (e *Etcd) AddLearner(ctx context.Context, name, peerURL string) ([]Member, error) {
	current, err := e.Members(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range current {
		if (name != "" && m.Name == name) || slices.Contains(m.PeerURLs, peerURL) {
			if m.ID == e.ID() {
				return nil, fmt.Errorf("etcd: %s (%s) is this member itself", name, peerURL)
			}
			if !m.Learner {
				return nil, fmt.Errorf("%w: %s (%s)", ErrVotingMember, m.Name, strings.Join(m.PeerURLs, ","))
			}
			e.lg.Warn("removing a stale learner of the same server before it joins again", "name", m.Name, "peer-urls", m.PeerURLs)
			if _, err := e.client.MemberRemove(ctx, m.ID); err != nil {
				return nil, fmt.Errorf("etcd: remove stale member %s: %w", m.Name, err)
			}
		}
	}
	resp, err := e.client.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return nil, fmt.Errorf("etcd: add learner %s at %s: %w", name, peerURL, err)
	}
	e.lg.Info("added etcd learner", "name", name, "peer-url", peerURL, "id", types.ID(resp.Member.ID).String())
	return members(resp.Members), nil
}

// PromoteSelf makes this member, a learner, a voting member as soon as it
// has caught up with the leader. It returns at once if it votes already.
func (e *Etcd) PromoteSelf(ctx context.Context) error {
	for {
		ms, err := e.Members(ctx)
		if err == nil {
			i := slices.IndexFunc(ms, func(m Member) bool { return m.ID == e.ID() })
			if i >= 0 && !ms[i].Learner {
				return nil
			}
			_, err = e.client.MemberPromote(ctx, e.ID())
			if err == nil {
				e.lg.Info("promoted from learner to voting member", "id", types.ID(e.ID()).String())
				return nil
			}
		}
		// Until the learner has caught up, etcd refuses with "can only
		// promote a learner member which is in sync with leader".
		e.lg.Debug("not promoted yet", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd: promote this learner: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// RemoveMember removes the member named name and reports whether there was
// one. It refuses to remove the last voting member.
func (e *Etcd) RemoveMember(ctx context.Context, name string) (bool, error) {
	ms, err := e.Members(ctx)
	if err != nil {
		return false, err
	}
	i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == name })
	if i < 0 {
		return false, nil
	}
	if Voters(ms) == 1 && !ms[i].Learner {
		return false, fmt.Errorf("etcd: %s is the only voting member; it cannot be removed", name)
	}
	if _, err := e.client.MemberRemove(ctx, ms[i].ID); err != nil {
		return false, fmt.Errorf("etcd: remove member %s: %w", name, err)
	}
	e.lg.Info("removed etcd member", "name", name, "id", types.ID(ms[i].ID).String())
	return true, nil
}

// Voters counts the voting members.
func Voters(ms []Member) int {
	n := 0
	for _, m := range ms {
		if !m.Learner {
			n++
		}
	}
	return n
}

// EnsurePeerURL updates this member's advertised peer URL when it differs
// from the recorded one: a server that started alone on loopback and is now
// started with --cluster-init, or whose address changed.
func (e *Etcd) EnsurePeerURL(ctx context.Context) error {
	// The local view needs no quorum; most starts end here.
	self := e.etcd.Server.Cluster().Member(e.etcd.Server.MemberID())
	if self == nil || slices.Equal(self.PeerURLs, []string{e.peerURL}) {
		return nil
	}
	if _, err := e.client.MemberUpdate(ctx, e.ID(), []string{e.peerURL}); err != nil {
		return fmt.Errorf("etcd: update this member's peer URL to %s: %w", e.peerURL, err)
	}
	e.lg.Info("updated this member's peer URL", "from", self.PeerURLs, "to", e.peerURL)
	return nil
}
