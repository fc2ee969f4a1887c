package kubeindex

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clusterdns/clusterdns/resolver"
)

// Resource names used in metric labels, readiness reasons and logs.
const (
	resServices       = "services"
	resEndpointSlices = "endpointslices"
	resNamespaces     = "namespaces"
	resPods           = "pods"
	kindEndpoints     = "endpoints" // objects/skipped kind for single endpoints
)

var watchedResources = [...]string{resServices, resEndpointSlices, resNamespaces, resPods}

// Metrics are the index's collectors. The server creates them once and hands
// them to every Store it builds, so a reload never re-registers anything.
// Every Store adds its own contribution to the objects gauges and takes it
// back on Stop, which keeps them right while an old and a new Store overlap.
//
// programming_latency_seconds{kind} measures the time from a change to the
// index reflecting it. EndpointSlices: from the controller's
// endpoints.kubernetes.io/last-change-trigger-time annotation, on each add or
// update that carries a new trigger time. Services have no such stamp: only
// creations are measured, from creationTimestamp (1 s resolution). Objects of
// the initial list are not measured; after an outage the relist's updates
// are, and show the outage.
type Metrics struct {
	objects     *prometheus.GaugeVec     // kind
	watchErrors *prometheus.CounterVec   // resource, reason
	lastEvent   *prometheus.GaugeVec     // resource
	latency     *prometheus.HistogramVec // kind
	skipped     *prometheus.CounterVec   // kind, reason
	serial      prometheus.Gauge
	releases    prometheus.Counter

	// lastEventNanos backs last_event_age_seconds; one entry per watched
	// resource, fixed at construction (never written to as a map).
	lastEventNanos map[string]*atomic.Int64
}

// NewMetrics creates the collectors and registers them on reg; nil reg
// leaves them unregistered (tests, or a server without /metrics).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const sub = "kubeindex"
	m := &Metrics{
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: resolver.Namespace, Subsystem: sub, Name: "objects",
			Help: "Objects held by the index by kind (services, endpointslices, endpoints, namespaces, pods).",
		}, []string{"kind"}),
		watchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: resolver.Namespace, Subsystem: sub, Name: "watch_errors_total",
			Help: "List/watch failures by resource and reason (forbidden, unauthorized, connection_refused, timeout, expired, closed, not_found, other).",
		}, []string{"resource", "reason"}),
		lastEvent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: resolver.Namespace, Subsystem: sub, Name: "last_event_timestamp_seconds",
			Help: "Unix time of the last add/update/delete handled, by resource.",
		}, []string{"resource"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: resolver.Namespace, Subsystem: sub, Name: "programming_latency_seconds",
			Help:    "Time from an object's change (EndpointSlice last-change-trigger-time, Service creationTimestamp on creation) to the index reflecting it.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 4, 8, 15, 30, 60, 120},
		}, []string{"kind"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: resolver.Namespace, Subsystem: sub, Name: "skipped_total",
			Help: "Objects or parts of objects left out of the index or degraded, by kind and reason.",
		}, []string{"kind", "reason"}),
		serial: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: resolver.Namespace, Subsystem: sub, Name: "serial",
			Help: "Current zone serial of the cluster index.",
		}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: resolver.Namespace, Subsystem: sub, Name: "memory_releases_total",
			Help: "Times the memory left over by a list (initial sync or relist) was returned to the operating system.",
		}),
		lastEventNanos: make(map[string]*atomic.Int64, len(watchedResources)),
	}
	cs := []prometheus.Collector{m.objects, m.watchErrors, m.lastEvent, m.latency, m.skipped, m.serial, m.releases}
	for _, r := range watchedResources {
		ts := new(atomic.Int64)
		m.lastEventNanos[r] = ts
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: resolver.Namespace, Subsystem: sub, Name: "last_event_age_seconds",
			Help:        "Seconds since the last add/update/delete handled, by resource; NaN before the first one.",
			ConstLabels: prometheus.Labels{"resource": r},
		}, func() float64 {
			n := ts.Load()
			if n == 0 {
				return math.NaN()
			}
			return time.Since(time.Unix(0, n)).Seconds()
		}))
	}
	if reg != nil {
		reg.MustRegister(cs...)
	}
	return m
}

// event records that an event of resource was handled at now.
func (m *Metrics) event(resource string, now time.Time) {
	m.lastEventNanos[resource].Store(now.UnixNano())
	m.lastEvent.WithLabelValues(resource).Set(float64(now.UnixNano()) / 1e9)
}

// observeLatency records the programming latency of one change; changed is
// the change's unix nanos (0: unknown, nothing recorded).
func (m *Metrics) observeLatency(kind string, changed int64, now time.Time) {
	if changed == 0 {
		return
	}
	d := now.Sub(time.Unix(0, changed)).Seconds()
	m.latency.WithLabelValues(kind).Observe(max(d, 0))
}
