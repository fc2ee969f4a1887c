// Package kubeindex answers the cluster zone, and the index's addresses in
// the reverse zones, from an in-memory index of Services, EndpointSlices,
// Namespaces and Pods kept by informers.
//
// Design constraint: answers come from memory without locks and with at
// most a couple of allocations per query, and the index never denies a name
// it has not seen yet (SERVFAIL until synced) nor forgets one because the API
// server went away. The store side (Store, informers, slim objects) does not
// use miekg/dns; the DNS side consumes it only through the Index interface.
package kubeindex

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/clusterdns/clusterdns/resolver"
)

// Options are the non-config dependencies of a Kube.
type Options struct {
	// Metrics are shared by every Kube the server builds; nil means private
	// unregistered collectors.
	Metrics *Metrics
	// Logger; nil discards.
	Logger *slog.Logger
	// Client talks to the API server; nil means NewClient(cfg).
	Client API
}

// Kube is the kubeindex stage: a Store and the handler answering from it.
type Kube struct {
	cfg   Config
	store *Store
	e     *engine
	log   *slog.Logger // never nil
}

var (
	_ resolver.Runner  = (*Kube)(nil)
	_ resolver.Readier = (*Kube)(nil)
)

// New validates cfg and builds the stage; nothing talks to the API server
// before Start.
func New(cfg Config, opts Options) (*Kube, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := opts.Client
	if client == nil {
		if client, err = NewClient(cfg); err != nil {
			return nil, fmt.Errorf("kubeindex: api client: %w", err)
		}
	}
	store := NewStore(cfg, client, StoreOptions{Metrics: opts.Metrics, Logger: log})
	return &Kube{cfg: cfg, store: store, e: newEngine(set, store, log), log: log}, nil
}

// Wrap returns the handler answering in front of next; Name() "kubeindex".
func (k *Kube) Wrap(next resolver.Handler) resolver.Handler { return k.e.wrap(next) }

// SetChaser sets how ExternalName targets outside the cluster zone are
// resolved; handlers already built by Wrap see it too. Until it is set,
// such an ExternalName answers with its CNAME alone.
func (k *Kube) SetChaser(c Chaser) {
	if c == nil {
		k.e.chaser.Store(nil)
		return
	}
	k.e.chaser.Store(&chaserRef{c: c})
}

// Start runs the informers and waits up to cfg.StartupTimeout for the first
// sync. It does not fail when the sync takes longer: the zone answers
// SERVFAIL until then, and the log names what is missing.
func (k *Kube) Start(ctx context.Context) error {
	if err := k.store.Start(ctx); err != nil {
		return fmt.Errorf("start informers: %w", err)
	}
	wait, cancel := context.WithTimeout(ctx, k.cfg.StartupTimeout)
	defer cancel()
	began := time.Now()
	if k.store.WaitSynced(wait) {
		k.log.Info("kubernetes index synced", "zone", k.e.set.zone, "after", time.Since(began).Round(time.Millisecond))
		return nil
	}
	_, why := k.store.Ready()
	k.log.Warn("kubernetes index not synced within the startup timeout; the cluster zone answers SERVFAIL until it is",
		"zone", k.e.set.zone, "timeout", k.cfg.StartupTimeout, "missing", why)
	return nil
}

// Stop stops the informers; handlers keep answering from the last state.
func (k *Kube) Stop(ctx context.Context) error { return k.store.Stop(ctx) }

// Ready reports whether the index has synced, and otherwise what it waits
// for.
func (k *Kube) Ready() (bool, string) { return k.store.Ready() }

// Zones lists the lower-case FQDNs the stage answers: the cluster zone, then
// the reverse zones.
func (k *Kube) Zones() []string { return k.e.set.zones() }
