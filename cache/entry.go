package cache

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

type entryKind uint8

const (
	kindPositive entryKind = iota // NOERROR with an answer
	kindNegative                  // NXDOMAIN or NODATA (RFC 2308)
	kindServfail                  // SERVFAIL; no message is kept
)

// entry is one cached reply. Everything but the prefetch bookkeeping is
// immutable once the entry is stored, so hits read it without a lock.
type entry struct {
	wire   wireForm      // the reply; empty for kindServfail
	kind   entryKind     //
	stored time.Time     // insert time
	ttl    time.Duration // TTL at insert after caps and floor; > 0

	// Prefetch bookkeeping, updated by hits without the shard lock.
	windowStart atomic.Int64 // UnixNano when the current hit window began
	hits        atomic.Int64 // hits in the current window
	prefetched  atomic.Bool  // a refresh was started for this entry
}

// remaining is how long e has left to live at now; <= 0 once expired. It
// never exceeds e.ttl: a query that read the clock just before another one
// stored e must not see a TTL longer than the original.
func (e *entry) remaining(now time.Time) time.Duration {
	return e.ttl - max(now.Sub(e.stored), 0)
}

// usable reports whether e may answer at now: fresh, or expired by less than
// stale (RFC 8767) unless it is a SERVFAIL, which is never served stale.
func (e *entry) usable(now time.Time, stale time.Duration) bool {
	rem := e.remaining(now)
	return rem > 0 || (e.kind != kindServfail && -rem < stale)
}

// hit counts a hit at now and returns the hits within the current window.
// Races between concurrent hits may lose a count at a window boundary, which
// only makes prefetch slightly less eager.
func (e *entry) hit(now time.Time, window time.Duration) int64 {
	t := now.UnixNano()
	start := e.windowStart.Load()
	if t-start > int64(window) && e.windowStart.CompareAndSwap(start, t) {
		e.hits.Store(1)
		return 1
	}
	return e.hits.Add(1)
}

// newEntry classifies the reply m to the query with key k and returns the
// entry to store, or nil when m must not be cached. m is not retained.
func (c *Cache) newEntry(k key, m *dns.Msg, now time.Time) *entry {
	if m.Truncated || !sameQuestion(k, m) || m.IsTsig() != nil {
		return nil
	}
	e := &entry{stored: now}
	e.windowStart.Store(now.UnixNano())
	switch {
	case m.Rcode == dns.RcodeServerFailure:
		if c.cfg.ServfailTTL <= 0 {
			return nil
		}
		e.kind, e.ttl = kindServfail, c.cfg.ServfailTTL
		return e
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		e.kind = kindPositive
		e.ttl = clampTTL(minTTL(m), c.cfg.MinTTL, c.cfg.MaxTTL)
	case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
		// RFC 2308 section 5: the negative TTL is the smaller of the SOA's
		// TTL and its MINIMUM field. Without an SOA there is nothing to bound
		// it by and the RFC says not to cache, so we don't.
		soa := findSOA(m.Ns)
		if soa == nil {
			return nil
		}
		e.kind = kindNegative
		e.ttl = clampTTL(min(minTTL(m), soa.Minttl), c.cfg.MinTTL, c.cfg.MaxNegativeTTL)
	default:
		return nil // REFUSED, FORMERR, NOTIMP and the rest are never cached
	}
	if e.ttl <= 0 {
		return nil
	}
	w, err := c.packReply(m)
	if err != nil {
		c.log.Debug("reply not cached", "name", k.name, "type", dns.TypeToString[k.qtype], "err", err)
		return nil
	}
	e.wire = w
	return e
}

// sameQuestion reports whether m answers the question of k.
func sameQuestion(k key, m *dns.Msg) bool {
	if len(m.Question) != 1 {
		return false
	}
	q := m.Question[0]
	return q.Qtype == k.qtype && q.Qclass == k.qclass && strings.EqualFold(q.Name, k.name)
}

// clampTTL turns a record TTL in seconds into the entry TTL. A TTL of 0 means
// "do not cache" (RFC 1035) and stays 0: the floor only lifts short TTLs.
func clampTTL(sec uint32, floor, ceil time.Duration) time.Duration {
	if sec == 0 {
		return 0
	}
	return max(min(time.Duration(sec)*time.Second, ceil), floor)
}

// minTTL is the smallest TTL of the records in m, OPT excluded.
func minTTL(m *dns.Msg) uint32 {
	ttl := uint32(1<<31 - 1) // RFC 2181 section 8: the largest TTL
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT && h.Ttl < ttl {
				ttl = h.Ttl
			}
		}
	}
	return ttl
}

func findSOA(rrs []dns.RR) *dns.SOA {
	for _, rr := range rrs {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa
		}
	}
	return nil
}
