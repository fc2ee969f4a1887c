package cache

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clusterdns/clusterdns/resolver"
)

// Metrics are the cache stage's collectors. One Metrics may outlive the Cache
// it was first given to: the entries gauge reads the Cache most recently built
// with it, so a cache replaced on reload does not leave its count behind.
type Metrics struct {
	hitSuccess  prometheus.Counter
	hitDenial   prometheus.Counter
	hitServfail prometheus.Counter
	misses      prometheus.Counter
	evictions   prometheus.Counter
	prefetches  prometheus.Counter
	stale       prometheus.Counter

	cache atomic.Pointer[Cache] // read by the entries gauge; nil until New
}

// NewMetrics creates the collectors and registers them on reg; a nil reg
// leaves them unregistered (tests, or a caller that does not export them).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{}
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: resolver.Namespace, Subsystem: "cache", Name: "hits_total",
		Help: "Queries answered from the cache, by kind of entry.",
	}, []string{"type"})
	m.hitSuccess = hits.WithLabelValues("success")
	m.hitDenial = hits.WithLabelValues("denial")
	m.hitServfail = hits.WithLabelValues("servfail")
	m.misses = counter("misses_total", "Queries passed on because no fresh entry was cached.")
	m.evictions = counter("evictions_total", "Entries evicted to make room for new ones.")
	m.prefetches = counter("prefetch_total", "Background refreshes of popular entries started.")
	m.stale = counter("served_stale_total", "Queries answered from an expired entry because the rest of the chain failed.")
	entries := func(kind entryKind, label string) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: resolver.Namespace, Subsystem: "cache", Name: "entries",
			Help:        "Entries held, by type (negative includes cached SERVFAILs).",
			ConstLabels: prometheus.Labels{"type": label},
		}, func() float64 {
			if c := m.cache.Load(); c != nil {
				return float64(c.count(kind))
			}
			return 0
		})
	}
	if reg != nil {
		reg.MustRegister(hits, m.misses, m.evictions, m.prefetches, m.stale,
			entries(kindPositive, "positive"), entries(kindNegative, "negative"))
	}
	return m
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: resolver.Namespace, Subsystem: "cache", Name: name, Help: help,
	})
}
