package kubeindex

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterdns/clusterdns/resolver"
)

// ErrStoreStopped is returned by Start on a Store that was stopped; informers
// cannot be restarted, the server builds a new Store instead.
var ErrStoreStopped = errors.New("kubeindex: store stopped")

// StoreOptions are the non-config dependencies of a Store.
type StoreOptions struct {
	// Metrics are shared by every Store the server builds; nil means private
	// unregistered collectors.
	Metrics *Metrics
	// Logger; nil discards.
	Logger *slog.Logger
}

// Store keeps the cluster index: informers over Services, EndpointSlices,
// Namespaces (and Pods with pods: verified) feed slim objects into an
// in-memory index that answers the DNS side's lookups without allocating.
// Once synced it serves its last state for as long as the API server is
// away; the informers retry and relist by themselves, and a relist removes
// whatever was deleted meanwhile.
type Store struct {
	cfg     Config
	client  API
	log     *slog.Logger
	metrics *Metrics
	tr      *transformer
	idx     *index
	watched []*watched // fixed by NewStore
	rel     *releaser
	synced  atomic.Bool
	events  atomic.Uint64 // handler events so far, for rel

	mu      sync.Mutex // guards the lifecycle fields below
	state   int        // stateNew, stateRunning or stateStopped
	cancel  context.CancelFunc
	stopped chan struct{} // closed when every informer goroutine returned
}

const (
	stateNew = iota
	stateRunning
	stateStopped
)

var (
	_ Index            = (*Store)(nil)
	_ resolver.Runner  = (*Store)(nil)
	_ resolver.Readier = (*Store)(nil)
)

// NewStore builds the informers and an empty index; nothing talks to the API
// server before Start. cfg is expected to be valid (Config.Validate).
func NewStore(cfg Config, client API, opts StoreOptions) *Store {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var allowed map[string]bool
	if len(cfg.Namespaces) > 0 {
		allowed = make(map[string]bool, len(cfg.Namespaces))
		for _, ns := range cfg.Namespaces {
			allowed[strings.ToLower(ns)] = true
		}
	}
	s := &Store{
		cfg:     cfg,
		client:  client,
		log:     opts.Logger,
		metrics: opts.Metrics,
		tr:      &transformer{log: opts.Logger, metrics: opts.Metrics, podNames: cfg.EndpointPodNames},
		// A time-based start keeps serials increasing across restarts (see
		// index.bump).
		idx: newIndex(opts.Metrics, uint32(time.Now().Unix()), allowed),
	}
	s.rel = newReleaser(s.Synced, s.events.Load, opts.Metrics.releases.Inc)
	s.buildInformers()
	return s
}

// Start runs the informers and returns at once; WaitSynced waits for the
// first sync. The informers live until Stop, not until ctx is done: ctx only
// lends its values (the store outlives the call that starts it).
func (s *Store) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateRunning:
		return nil
	case stateStopped:
		return ErrStoreStopped
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, w := range s.watched {
		wg.Go(func() { w.inf.RunWithContext(runCtx) })
	}
	wg.Go(func() { s.rel.run(runCtx) })
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	s.state, s.cancel, s.stopped = stateRunning, cancel, stopped
	return nil
}

// Stop stops the informers and waits for their goroutines until ctx is
// done. The index keeps answering with its last state but takes no more
// updates, and its objects leave the shared gauges.
func (s *Store) Stop(ctx context.Context) error {
	s.mu.Lock()
	prev := s.state
	s.state = stateStopped
	cancel, stopped := s.cancel, s.stopped
	s.mu.Unlock()
	if prev == stateRunning {
		cancel()
		s.idx.close()
	} else if prev == stateNew {
		s.idx.close()
	}
	if stopped == nil {
		return nil
	}
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kubeindex: stop informers: %w", ctx.Err())
	}
}

// Synced reports whether every informer has listed and the index has taken
// in the whole initial list. Once true it stays true.
func (s *Store) Synced() bool {
	if s.synced.Load() {
		return true
	}
	for _, w := range s.watched {
		if !w.synced() {
			return false
		}
	}
	s.idx.live.Store(true)
	s.synced.Store(true)
	return true
}

// Ready is Synced with a reason: for each unsynced informer, its last
// list/watch failure ("endpointslices: forbidden: ...") or that it is still
// waiting. Later outages do not make a synced store unready: it keeps
// serving, and an unready DNS pod would only make things worse.
func (s *Store) Ready() (bool, string) {
	if s.Synced() {
		return true, ""
	}
	s.mu.Lock()
	state := s.state
	s.mu.Unlock()
	switch state {
	case stateNew:
		return false, "kubeindex: not started"
	case stateStopped:
		return false, "kubeindex: stopped before sync"
	}
	var why []string
	for _, w := range s.watched {
		if w.synced() {
			continue
		}
		if p := w.lastErr.Load(); p != nil {
			why = append(why, *p)
		} else {
			why = append(why, w.desc+": waiting for initial list")
		}
	}
	return false, strings.Join(why, "; ")
}

// WaitSynced blocks until Synced or ctx is done and reports Synced.
func (s *Store) WaitSynced(ctx context.Context) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !s.Synced() {
		select {
		case <-ctx.Done():
			return s.Synced()
		case <-t.C:
		}
	}
	return true
}

// Serial is the zone serial. It starts from the clock and, once synced,
// changes only with an answer-visible change.
func (s *Store) Serial() uint32 { return s.idx.serial.Load() }

// HasNamespace reports whether ns exists and is exposed.
func (s *Store) HasNamespace(ns string) bool {
	s.idx.mu.RLock()
	_, ok := s.idx.nss[ns]
	s.idx.mu.RUnlock()
	return ok
}

// Service returns the immutable view of ns/name, or nil.
func (s *Store) Service(ns, name string) *ServiceView {
	s.idx.mu.RLock()
	v := s.idx.views[svcKey{ns, name}]
	s.idx.mu.RUnlock()
	return v
}

// Reverse returns every owner of addr; the slice must not be modified.
func (s *Store) Reverse(addr netip.Addr) []ReverseName {
	s.idx.mu.RLock()
	p := s.idx.reverse(addr)
	s.idx.mu.RUnlock()
	if p == nil {
		return nil
	}
	return *p
}

// HasPod reports whether a pod of ns has addr among its podIPs.
func (s *Store) HasPod(ns string, addr netip.Addr) bool {
	s.idx.mu.RLock()
	_, ok := s.idx.pods[podKey{ns, addr}]
	s.idx.mu.RUnlock()
	return ok
}

// Walk calls fn for every service, ordered by namespace and name, until fn
// returns false. It works on a snapshot, so a slow fn (an AXFR stream)
// never holds up updates or queries.
func (s *Store) Walk(fn func(*ServiceView) bool) {
	s.idx.mu.RLock()
	all := make([]*ServiceView, 0, len(s.idx.views))
	for _, v := range s.idx.views {
		all = append(all, v)
	}
	s.idx.mu.RUnlock()
	slices.SortFunc(all, func(a, b *ServiceView) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	for _, v := range all {
		if !fn(v) {
			return
		}
	}
}
