package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
)

// staleTTL is the TTL of an answer served stale (RFC 8767 section 4 suggests 30 s).
const staleTTL = 30

// ErrCachedFailure is returned with SERVFAIL when the failure itself came
// from the cache (a SERVFAIL cached for Config.ServfailTTL).
var ErrCachedFailure = errors.New("cached server failure")

// Options are the cache stage's collaborators.
type Options struct {
	Metrics *Metrics     // nil: unregistered collectors
	Logger  *slog.Logger // nil: discard
	// SkipZones are lower-case FQDNs (the cluster zone) whose names bypass
	// the cache unless Config.ClusterZone.
	SkipZones []string
	Now       func() time.Time // nil: time.Now
}

// Cache is the response cache. It is long-lived: Wrap may be called again
// with a new next on reload, and the entries carry over.
type Cache struct {
	cfg     Config
	metrics *Metrics     // never nil
	log     *slog.Logger // never nil
	now     func() time.Time
	skip    []string // zones that bypass the cache; nil when ClusterZone
	seed    maphash.Seed
	shards  []*shard // len is a power of two
	bufs    bufPool  // packing and hit-reply buffers

	mu       sync.Mutex         // guards following (the prefetch run)
	runCtx   context.Context    // ends on Stop
	cancel   context.CancelFunc // nil when not started
	wg       *sync.WaitGroup    // prefetches of the current run
	inflight map[key]struct{}   // keys being prefetched in the current run
}

// New returns a cache for cfg, which must be valid.
func New(cfg Config, opts Options) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c := &Cache{
		cfg:     cfg,
		metrics: opts.Metrics,
		log:     opts.Logger,
		now:     opts.Now,
		seed:    maphash.MakeSeed(),
		shards:  newShards(cfg.Size),
	}
	if c.metrics == nil {
		c.metrics = NewMetrics(nil)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if !cfg.ClusterZone && len(opts.SkipZones) > 0 {
		c.skip = normalizeZones(opts.SkipZones)
	}
	c.metrics.cache.Store(c)
	return c, nil
}

// Len is the number of entries held, expired ones not yet dropped included.
func (c *Cache) Len() int {
	n := 0
	for _, s := range c.shards {
		n += s.len()
	}
	return n
}

// count is the number of entries of kind; SERVFAILs count as negative.
func (c *Cache) count(kind entryKind) int {
	n := 0
	for _, s := range c.shards {
		n += s.count(kind)
		if kind == kindNegative {
			n += s.count(kindServfail)
		}
	}
	return n
}

func (c *Cache) shard(k key) *shard {
	return c.shards[k.hash(c.seed)&uint64(len(c.shards)-1)]
}

// store caches the reply m to the query with key k if it may be cached, and
// returns the entry stored or nil.
func (c *Cache) store(k key, m *dns.Msg) *entry {
	now := c.now()
	e := c.newEntry(k, m, now)
	if e != nil {
		c.insert(k, e, now)
	}
	return e
}

// storeServfail caches the SERVFAIL a stage returned (rather than wrote).
func (c *Cache) storeServfail(k key) {
	if c.cfg.ServfailTTL <= 0 {
		return
	}
	now := c.now()
	e := &entry{kind: kindServfail, stored: now, ttl: c.cfg.ServfailTTL}
	c.insert(k, e, now)
}

func (c *Cache) insert(k key, e *entry, now time.Time) {
	if c.shard(k).add(k, e, now, c.cfg.ServeStale) {
		c.metrics.evictions.Inc()
	}
}

// Wrap returns the cache stage in front of next.
func (c *Cache) Wrap(next resolver.Handler) resolver.Handler {
	return &handler{c: c, next: next}
}

// handler is the stage of one compiled chain; it holds next, the Cache does not.
type handler struct {
	c    *Cache
	next resolver.Handler
}

func (h *handler) Name() string { return "cache" }

// ServeDNS answers from a fresh entry, or passes the query on and caches
// what comes back, or answers from a stale entry if passing on fails.
func (h *handler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	k, e, now, ok := h.find(r)
	if !ok {
		return resolver.NextOrFailure(ctx, "cache", h.next, w, r)
	}
	if e == nil {
		h.c.metrics.misses.Inc()
		return h.miss(ctx, w, r, k)
	}
	rem := e.remaining(now)
	if rem <= 0 {
		h.c.metrics.misses.Inc()
		return h.refreshStale(ctx, w, r, k, e)
	}
	return h.hit(w, r, k, e, now, rem)
}

// ServeInline answers r if it is a hit on a fresh entry, which waits on
// nothing but the shard lock, and otherwise reports false having done
// nothing: the front end calls it from its reader goroutine, sparing hits
// the handoff to a worker, and gives the rest to ServeDNS on a worker.
// Misses are counted there, not here. A query the cache bypasses (not
// cacheable, or in a skipped zone such as the cluster zone) is offered to
// next inline, as ServeDNS would pass it on; next is fixed for this
// handler's chain generation, so a reload cannot change it underneath.
func (h *handler) ServeInline(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (served bool, rcode int, err error) {
	k, e, now, ok := h.find(r)
	if !ok {
		if ih, inline := h.next.(resolver.InlineHandler); inline {
			return ih.ServeInline(ctx, w, r)
		}
		return false, 0, nil
	}
	if e == nil {
		return false, 0, nil // a miss: it is counted and filled on a worker
	}
	rem := e.remaining(now)
	if rem <= 0 {
		return false, 0, nil // stale: the refresh goes through the chain
	}
	rcode, err = h.hit(w, r, k, e, now, rem)
	return true, rcode, err
}

// find returns the key of r and its usable entry (nil if none) at now; ok is
// false when r bypasses the cache.
func (h *handler) find(r *dns.Msg) (k key, e *entry, now time.Time, ok bool) {
	c := h.c
	if !cacheable(r) {
		return k, nil, now, false
	}
	k = keyOf(r)
	if c.skip != nil && inZones(k.name, c.skip) {
		return k, nil, now, false
	}
	now = c.now()
	return k, c.shard(k).lookup(k, now, c.cfg.ServeStale), now, true
}

// hit answers r from the fresh entry e, which has rem left.
func (h *handler) hit(w dns.ResponseWriter, r *dns.Msg, k key, e *entry, now time.Time, rem time.Duration) (int, error) {
	h.maybePrefetch(k, e, now, rem)
	return h.c.answer(w, r, e, uint32(rem/time.Second))
}

// answer writes the reply from e with TTL ttl, or returns a cached SERVFAIL.
func (c *Cache) answer(w dns.ResponseWriter, r *dns.Msg, e *entry, ttl uint32) (int, error) {
	switch e.kind {
	case kindServfail:
		c.metrics.hitServfail.Inc()
		return dns.RcodeServerFailure, ErrCachedFailure
	case kindNegative:
		c.metrics.hitDenial.Inc()
	default:
		c.metrics.hitSuccess.Inc()
	}
	rcode, err := c.write(w, r, e, ttl)
	if err != nil {
		return rcode, fmt.Errorf("cache: write reply: %w", err)
	}
	return rcode, nil
}

// write sends the reply to r from e with every TTL set to ttl: as bytes to
// the front end, as a message to any other writer.
func (c *Cache) write(w dns.ResponseWriter, r *dns.Msg, e *entry, ttl uint32) (int, error) {
	bp := c.bufs.get(int(e.wire.n))
	defer c.bufs.put(bp)
	b := e.wire.hitReply(*bp, r, ttl)
	rcode := int(b[3] & 0xf)
	if ww, ok := w.(wireWriter); ok {
		return rcode, ww.WriteWire(b)
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return dns.RcodeServerFailure, fmt.Errorf("%w: %w", errWire, err)
	}
	return rcode, w.WriteMsg(m)
}

// miss passes r on, caching the reply next writes or the SERVFAIL it returns.
func (h *handler) miss(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, k key) (int, error) {
	cw := &writer{ResponseWriter: w, c: h.c, k: k}
	rcode, err := resolver.NextOrFailure(ctx, "cache", h.next, cw, r)
	// A query cancelled from above (shutdown, client gone) says nothing about
	// the name, so its failure is not cached; a deadline is a real failure.
	if !cw.wrote && rcode == dns.RcodeServerFailure && !errors.Is(ctx.Err(), context.Canceled) {
		h.c.storeServfail(k)
	}
	return rcode, err
}

// refreshStale passes r on for the expired entry e; if nothing comes back
// (next failed, or ctx ended) it answers from e instead (RFC 8767).
func (h *handler) refreshStale(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, k key, e *entry) (int, error) {
	c := h.c
	cw := &writer{ResponseWriter: w, c: c, k: k}
	rcode, err := resolver.NextOrFailure(ctx, "cache", h.next, cw, r)
	if cw.wrote {
		return rcode, err
	}
	c.metrics.stale.Inc()
	c.log.Debug("serving stale", "name", k.name, "type", dns.TypeToString[k.qtype],
		"rcode", dns.RcodeToString[rcode], "err", err)
	rcode, werr := c.write(w, r, e, staleTTL)
	if werr != nil {
		return rcode, fmt.Errorf("cache: write stale reply: %w", werr)
	}
	return rcode, nil
}

// writer sees the reply the rest of the chain writes, caches a copy and
// passes it on to the client.
type writer struct {
	dns.ResponseWriter
	c     *Cache
	k     key
	wrote bool
}

// WriteMsg caches the first reply (later ones are further messages of a
// stream) and writes it. A reply just stored goes to the front end as its
// stored bytes, which are m packed as the front end would pack it: that
// saves packing it twice.
func (w *writer) WriteMsg(m *dns.Msg) error {
	if !w.wrote {
		w.wrote = true
		e := w.c.store(w.k, m)
		if ww, ok := w.ResponseWriter.(wireWriter); ok && e != nil && e.kind != kindServfail {
			return ww.WriteWire(e.wire.buf[:e.wire.n])
		}
	}
	return w.ResponseWriter.WriteMsg(m)
}

// Write passes wire bytes through uncached; stages write messages, not bytes.
func (w *writer) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}
