package kubeindex

import (
	"context"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// benchQueries are the cluster-answer paths a later issue budgets at two
// allocations per query.
var benchQueries = []struct {
	name  string
	qname string
	qtype uint16
	rcode int
}{
	{"ClusterIP_A", web, dns.TypeA, dns.RcodeSuccess},
	{"Headless_A", "v4head.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess},
	{"Headless_A_3", db, dns.TypeA, dns.RcodeSuccess},
	{"Endpoint_A", "db-0." + db, dns.TypeA, dns.RcodeSuccess},
	{"SRV", "_http._tcp." + web, dns.TypeSRV, dns.RcodeSuccess},
	{"SRV_headless", "_mysql._tcp." + db, dns.TypeSRV, dns.RcodeSuccess},
	{"PTR", "10.0.96.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess},
	{"PTR_endpoint", "1.1.1.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess},
	{"NODATA", web, dns.TypeAAAA, dns.RcodeSuccess},
	{"NXDOMAIN", "google.com.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError},
	{"MixedCase_A", "Web.Default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess},
}

func BenchmarkClusterAnswer(b *testing.B) {
	hs := newHarness(b, handlerConfig(), fixture())
	ctx := context.Background()
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			m := resolvertest.Query(q.qname, q.qtype)
			w := resolver.NewRecorder(nil)
			b.ReportAllocs()
			for b.Loop() {
				if rcode, _ := hs.h.ServeDNS(ctx, w, m); rcode != q.rcode {
					b.Fatalf("rcode %s", dns.RcodeToString[rcode])
				}
			}
		})
	}
}

// TestAnswerAllocs holds the allocation budget of the cluster-answer paths:
// one reply allocation, plus the lower-cased name for mixed-case queries, the
// PTR target names, and one record slice for bigger answers.
func TestAnswerAllocs(t *testing.T) {
	budget := map[string]float64{
		"ClusterIP_A": 1, "Headless_A": 1, "Headless_A_3": 2, "Endpoint_A": 1, "SRV": 1,
		"SRV_headless": 7, "PTR": 2, "PTR_endpoint": 2, "NODATA": 1, "NXDOMAIN": 1, "MixedCase_A": 2,
	}
	hs := newHarness(t, handlerConfig(), fixture())
	ctx := context.Background()
	for _, q := range benchQueries {
		m := resolvertest.Query(q.qname, q.qtype)
		w := resolver.NewRecorder(nil)
		n := testing.AllocsPerRun(50, func() { _, _ = hs.h.ServeDNS(ctx, w, m) })
		if n > budget[q.name] {
			t.Errorf("%s: %v allocations per query, budget %v", q.name, n, budget[q.name])
		}
	}
}
