package forward

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clusterdns/clusterdns/resolver"
)

const subsystem = "forward"

// Metrics are the forward stage's collectors. Create them once per process
// and hand the same value to every New (a reload builds a new Forward), since
// registering twice fails. Upstream series are not deleted when an upstream
// leaves the configuration.
type Metrics struct {
	requests     *prometheus.CounterVec   // upstream
	responses    *prometheus.CounterVec   // upstream, rcode
	duration     *prometheus.HistogramVec // upstream
	hcFailures   *prometheus.CounterVec   // upstream
	healthy      *prometheus.GaugeVec     // upstream
	looping      *prometheus.GaugeVec     // upstream
	mismatched   *prometheus.CounterVec   // upstream
	rejects      prometheus.Counter
	tcpFallbacks prometheus.Counter
}

// NewMetrics creates the collectors and registers them on reg; a nil reg
// leaves them unregistered (tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: resolver.Namespace, Subsystem: subsystem, Name: name, Help: help}
	}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts(opts("requests_total",
			"Queries sent to each upstream (a TCP retry after a truncated reply counts again).")), []string{"upstream"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts(opts("responses_total",
			"Accepted upstream replies by rcode.")), []string{"upstream", "rcode"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: resolver.Namespace, Subsystem: subsystem, Name: "request_duration_seconds",
			Help:    "Time from sending a query upstream to accepting its reply.",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 16), // 0.25ms .. ~8s
		}, []string{"upstream"}),
		hcFailures: prometheus.NewCounterVec(prometheus.CounterOpts(opts("healthcheck_failures_total",
			"Health probes of a down upstream that got no answer.")), []string{"upstream"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("upstream_healthy",
			"1 while the upstream is used, 0 while it is marked down.")), []string{"upstream"}),
		looping: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("upstream_looping",
			"1 while queries sent to the upstream come back to us (a forwarding loop): it is not used and /ready fails.")), []string{"upstream"}),
		mismatched: prometheus.NewCounterVec(prometheus.CounterOpts(opts("mismatched_replies_total",
			"Upstream packets dropped because their ID, QR bit or question did not match the query.")), []string{"upstream"}),
		rejects: prometheus.NewCounter(prometheus.CounterOpts(opts("max_concurrent_rejects_total",
			"Queries refused because maxConcurrent upstream queries were in flight."))),
		tcpFallbacks: prometheus.NewCounter(prometheus.CounterOpts(opts("tcp_fallbacks_total",
			"Truncated UDP replies retried over TCP."))),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.responses, m.duration, m.hcFailures, m.healthy,
			m.looping, m.mismatched, m.rejects, m.tcpFallbacks)
	}
	return m
}
