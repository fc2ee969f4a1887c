//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts of pooled paths are only meaningful without it.

package kubeindex

import (
	"context"
	"testing"

	"github.com/clusterdns/clusterdns/resolver"
	"github.com/clusterdns/clusterdns/resolver/resolvertest"
)

// TestInlineAllocs holds the allocation budget of inline answers, reply
// packing included: the reply is pooled, so what is left is the lower-cased
// name of mixed-case queries, the PTR target names, and records beyond what
// the pooled reply holds.
func TestInlineAllocs(t *testing.T) {
	budget := map[string]float64{
		"ClusterIP_A": 0, "Headless_A": 0, "Headless_A_3": 1, "Endpoint_A": 0, "SRV": 0,
		"SRV_headless": 2, "PTR": 1, "PTR_endpoint": 1, "NODATA": 0, "NXDOMAIN": 0, "MixedCase_A": 1,
	}
	hs := newHarness(t, handlerConfig(), fixture())
	ih := hs.h.(resolver.InlineHandler)
	ctx := context.Background()
	for _, q := range benchQueries {
		m := resolvertest.Query(q.qname, q.qtype)
		w := &discardWriter{Recorder: *resolver.NewRecorder(nil)}
		n := testing.AllocsPerRun(50, func() { _, _, _ = ih.ServeInline(ctx, w, m) })
		if n > budget[q.name] {
			t.Errorf("%s: %v allocations per query, budget %v", q.name, n, budget[q.name])
		}
	}
}
