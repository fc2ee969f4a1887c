package cache

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

const (
	// maxPrefetches bounds the refreshes in flight; more are dropped, not
	// queued: a prefetch is an optimisation and the entry still answers.
	maxPrefetches = 16
	// prefetchTimeout bounds one refresh through the rest of the chain.
	prefetchTimeout = 5 * time.Second
)

// Start lets the cache run prefetches. ctx's values are kept but not its
// end: prefetches run until Stop. Calling Start again is a no-op.
func (c *Cache) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return nil
	}
	c.runCtx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.wg = new(sync.WaitGroup)
	c.inflight = make(map[key]struct{})
	return nil
}

// Stop cancels the prefetches in flight and waits for them until ctx ends.
// Calling it again, or before Start, is a no-op.
func (c *Cache) Stop(ctx context.Context) error {
	c.mu.Lock()
	cancel, wg := c.cancel, c.wg
	c.cancel, c.wg, c.inflight = nil, nil, nil
	c.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cache: stop: waiting for prefetches: %w", ctx.Err())
	}
}

// maybePrefetch counts a hit on the fresh entry e, which has rem left, and
// starts its refresh once it is both popular and close to expiry.
func (h *handler) maybePrefetch(k key, e *entry, now time.Time, rem time.Duration) {
	p := h.c.cfg.Prefetch
	if p.Amount == 0 || e.kind == kindServfail {
		return
	}
	if e.hit(now, p.Window) < int64(p.Amount) || rem > e.ttl/100*time.Duration(p.Percentage) {
		return
	}
	if !e.prefetched.CompareAndSwap(false, true) {
		return // once per entry; the refresh replaces the entry
	}
	if !h.c.prefetch(h.next, k) {
		e.prefetched.Store(false) // dropped: a later hit may try again
	}
}

// prefetch starts a refresh of k through next unless the cache is not
// running, k is already being refreshed, or too many refreshes are in flight.
func (c *Cache) prefetch(next resolver.Handler, k key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel == nil || len(c.inflight) >= maxPrefetches {
		return false
	}
	if _, busy := c.inflight[k]; busy {
		return false
	}
	ctx, wg, inflight := c.runCtx, c.wg, c.inflight
	inflight[k] = struct{}{}
	wg.Add(1)
	c.metrics.prefetches.Inc()
	go func() {
		defer wg.Done()
		c.refresh(ctx, next, k)
		c.mu.Lock()
		delete(inflight, k)
		c.mu.Unlock()
	}()
	return true
}

// refresh asks next for k and caches the reply. A failure stores nothing over
// the entry, which keeps answering until it expires.
func (c *Cache) refresh(ctx context.Context, next resolver.Handler, k key) {
	ctx, cancel := context.WithTimeout(ctx, prefetchTimeout)
	defer cancel()
	rec := resolver.NewRecorder(nil)
	rcode, err := resolver.NextOrFailure(ctx, "cache", next, rec, k.query())
	if rec.Msg == nil {
		c.log.Debug("prefetch failed", "name", k.name, "type", dns.TypeToString[k.qtype],
			"rcode", dns.RcodeToString[rcode], "err", err)
		return
	}
	c.store(k, rec.Msg)
}
