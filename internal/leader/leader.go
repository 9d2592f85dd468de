// Package leader elects one skiff server to run the control loops, on an
// etcd lease. The leader steps down as soon as it can no longer be sure its
// lease is alive, before a successor's lease could let it act.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Config configures an elector.
type Config struct {
	Client *clientv3.Client
	// Prefix is the election's etcd key prefix.
	Prefix string
	// Identity names this candidate (the server's node name).
	Identity string
	// TTL is the lease's time to live: a dead leader is replaced after it.
	TTL    time.Duration
	Logger *slog.Logger
}

// Elector campaigns for leadership and runs the leader's work while it leads.
type Elector struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and returns an elector.
func New(cfg Config) (*Elector, error) {
	if cfg.Client == nil || cfg.Prefix == "" || cfg.Identity == "" {
		return nil, errors.New("leader: client, prefix and identity are required")
	}
	if cfg.TTL < 2*time.Second {
		return nil, fmt.Errorf("leader: TTL %v is too short (at least 2s)", cfg.TTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Elector{cfg: cfg, log: cfg.Logger.With("component", "leader")}, nil
}

// Run campaigns until ctx is done. Each time this candidate is elected it
// calls lead with a context that is cancelled the moment leadership may be
// lost, and waits for lead to return before campaigning again.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	for ctx.Err() == nil {
		if err := e.term(ctx, lead); err != nil && ctx.Err() == nil {
			e.log.Warn("election failed; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// term is one campaign and, if won, one term of leadership.
func (e *Elector) term(ctx context.Context, lead func(ctx context.Context)) error {
	ttlSeconds := int64(e.cfg.TTL / time.Second)
	grant, err := e.cfg.Client.Grant(ctx, ttlSeconds)
	if err != nil {
		return fmt.Errorf("grant lease: %w", err)
	}
	sessCtx, cancelSess := context.WithCancel(ctx)
	defer cancelSess()
	keepAlive, err := e.cfg.Client.KeepAlive(sessCtx, grant.ID)
	if err != nil {
		return fmt.Errorf("keep lease alive: %w", err)
	}
	session, err := concurrency.NewSession(e.cfg.Client, concurrency.WithLease(grant.ID), concurrency.WithContext(sessCtx))
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer func() {
		// Revoke so a successor need not wait out the TTL after a clean stop.
		revokeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = e.cfg.Client.Revoke(revokeCtx, grant.ID)
		_ = session.Close()
	}()

	// Renewals confirm the lease; without one for safeWindow, step down.
	renewed := make(chan time.Time, 1)
	go func() {
		for range keepAlive {
			select {
			case renewed <- time.Now():
			default:
				select {
				case <-renewed:
				default:
				}
				renewed <- time.Now()
			}
		}
		close(renewed)
	}()

	election := concurrency.NewElection(session, e.cfg.Prefix)
	e.log.Debug("campaigning", "identity", e.cfg.Identity)
	if err := election.Campaign(sessCtx, e.cfg.Identity); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	e.log.Info("elected leader", "identity", e.cfg.Identity, "ttl", e.cfg.TTL)

	leadCtx, stopLeading := context.WithCancel(sessCtx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(leadCtx)
	}()

	// The lease expires TTL after the last renewal that etcd received; this
	// side sees the renewal a little later. Stepping down after two thirds
	// of the TTL without a renewal leaves a margin for that and for clocks.
	safeWindow := e.cfg.TTL * 2 / 3
	timer := time.NewTimer(safeWindow)
	defer timer.Stop()
	reason := ""
	for reason == "" {
		select {
		case <-ctx.Done():
			reason = "stopping"
		case <-session.Done():
			reason = "session ended"
		case _, ok := <-renewed:
			if !ok {
				reason = "lease keep-alive ended"
				break
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(safeWindow)
		case <-timer.C:
			reason = "lease not renewed in time"
		case <-done:
			reason = "leader work returned"
		}
	}
	stopLeading()
	<-done
	if reason == "stopping" {
		e.log.Info("stepped down", "reason", reason)
		return nil
	}
	e.log.Warn("lost leadership", "reason", reason)
	return nil
}
