package frontend

import (
	"strconv"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clusterdns/clusterdns/resolver"
)

// Metrics holds the front end's collectors. Every labelled child is resolved
// here, once, so the per-query path does no label hashing or allocation.
type Metrics struct {
	requests    [2][2][len(typeLabels) + 1]prometheus.Counter // proto, family-1, type index
	responses   [rcodeSlots + 1]prometheus.Counter            // by rcode; the last is "other"
	duration    prometheus.Histogram
	inflight    prometheus.Gauge
	shed        [2]prometheus.Counter // by proto
	panics      prometheus.Counter
	tcpConns    prometheus.Gauge
	tcpRejected prometheus.Counter
	malformed   prometheus.Counter
}

const (
	protoUDP = 0
	protoTCP = 1
)

var protoNames = [2]string{"udp", "tcp"}

// typeLabels are the query types with their own requests_total series; any
// other type counts as "other", which bounds the label's cardinality.
var typeLabels = [...]uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypePTR, dns.TypeSRV,
	dns.TypeTXT, dns.TypeMX, dns.TypeNS, dns.TypeSOA, dns.TypeHTTPS,
	dns.TypeSVCB, dns.TypeCAA, dns.TypeDS, dns.TypeDNSKEY, dns.TypeANY,
	dns.TypeAXFR, dns.TypeIXFR,
}

// rcodeSlots covers the rcodes up to BADCOOKIE (23); larger ones count as
// "other".
const rcodeSlots = dns.RcodeBadCookie + 1

// NewMetrics creates the collectors and registers them on reg; a nil reg
// leaves them unregistered (tests, benchmarks).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	ns := resolver.Namespace
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "requests_total",
		Help: "DNS queries received, by transport, address family (1 IPv4, 2 IPv6) and query type.",
	}, []string{"proto", "family", "type"})
	responses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "responses_total",
		Help: "DNS replies written, by rcode.",
	}, []string{"rcode"})
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "shed_total",
		Help: "Queries shed over max_inflight: UDP dropped, TCP answered REFUSED.",
	}, []string{"proto"})
	m := &Metrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Name: "request_duration_seconds",
			Help:    "Time from receiving a query to its last reply written.",
			Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5},
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "inflight",
			Help: "Queries admitted and not yet finished.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "panics_total",
			Help: "Panics recovered while answering a query (each answered SERVFAIL).",
		}),
		tcpConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "tcp_connections",
			Help: "Open TCP client connections.",
		}),
		tcpRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "tcp_rejected_total",
			Help: "TCP connections closed at once because tcp_max_conns were open.",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "malformed_total",
			Help: "Packets that were short, responses, truncated on receipt or did not unpack.",
		}),
	}
	for p := range m.requests {
		for f := range m.requests[p] {
			fam := strconv.Itoa(f + 1)
			for i, t := range typeLabels {
				m.requests[p][f][i] = requests.WithLabelValues(protoNames[p], fam, dns.TypeToString[t])
			}
			m.requests[p][f][len(typeLabels)] = requests.WithLabelValues(protoNames[p], fam, "other")
		}
		m.shed[p] = shed.WithLabelValues(protoNames[p])
	}
	other := responses.WithLabelValues("other")
	for rc := range m.responses {
		name, ok := dns.RcodeToString[rc]
		if !ok || rc == rcodeSlots {
			m.responses[rc] = other
			continue
		}
		if rc == dns.RcodeBadVers {
			name = "BADVERS" // shares 16 with BADSIG; we never see TSIG
		}
		m.responses[rc] = responses.WithLabelValues(name)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{requests, responses, shed, m.duration, m.inflight, m.panics, m.tcpConns, m.tcpRejected, m.malformed} {
			reg.MustRegister(c)
		}
	}
	return m
}

// typeIndex maps a query type to its requests_total slot.
func typeIndex(t uint16) int {
	for i, lt := range typeLabels {
		if lt == t {
			return i
		}
	}
	return len(typeLabels)
}

func (m *Metrics) request(proto, family int, qtype uint16) {
	m.requests[proto][family][typeIndex(qtype)].Inc()
}

func (m *Metrics) response(rcode int) {
	if rcode < 0 || rcode >= rcodeSlots {
		rcode = rcodeSlots
	}
	m.responses[rcode].Inc()
}
